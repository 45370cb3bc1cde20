package e2e

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/tickfan/tickfan/internal/redistest"
)

// operationsDoc is the operators' guide, whose metric table must name
// every metric the server registers, with its type and labels.
const operationsDoc = "../docs/OPERATIONS.md"

// docMetric is a metric's row of the table: | `name{label,...}` | type | ...
type docMetric struct {
	kind   string
	labels []string
}

var (
	docMetricRow = regexp.MustCompile("^\\| `(tickfan_[a-z_]+)(?:\\{([a-z_,]+)\\})?` \\| ([a-z]+) \\|")
	// A go_ or process_ metric the guide names in backquotes.
	docRuntimeMetric = regexp.MustCompile("`((?:go|process)_[a-z_]+)`")
)

func readOperationsDoc(t *testing.T) (string, map[string]docMetric) {
	t.Helper()
	b, err := os.ReadFile(operationsDoc)
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]docMetric{}
	for i, line := range strings.Split(string(b), "\n") {
		m := docMetricRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if _, dup := rows[m[1]]; dup {
			t.Errorf("%s:%d: %s has two rows", operationsDoc, i+1, m[1])
		}
		var labels []string
		if m[2] != "" {
			labels = strings.Split(m[2], ",")
		}
		rows[m[1]] = docMetric{kind: m[3], labels: labels}
	}
	return string(b), rows
}

// TestDocOperationsMetrics holds docs/OPERATIONS.md to the metrics a real
// server exports on /metrics: every tickfan_ metric has a row with its type
// and labels, every row names a metric the server has, and every go_ or
// process_ metric the guide names exists. The Redis metrics are checked
// against a node started with --redis (a real redis-server; skipped
// without one, a failure under CI=true).
func TestDocOperationsMetrics(t *testing.T) {
	text, rows := readOperationsDoc(t)
	fams := start(t).metrics(t)
	r := redistest.Start(t)
	for name, f := range redisNode(t, r.Addr).metrics(t) {
		fams[name] = f
	}
	for name, f := range fams {
		if !strings.HasPrefix(name, "tickfan_") {
			continue
		}
		row, ok := rows[name]
		if !ok {
			t.Errorf("%s (%s) has no row in the metric table of %s", name, strings.ToLower(f.GetType().String()), operationsDoc)
			continue
		}
		if kind := strings.ToLower(f.GetType().String()); row.kind != kind {
			t.Errorf("%s: %s is a %s, the table says %s", operationsDoc, name, kind, row.kind)
		}
		var labels []string
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if !slices.Contains(labels, l.GetName()) {
					labels = append(labels, l.GetName())
				}
			}
		}
		slices.Sort(labels)
		documented := slices.Sorted(slices.Values(row.labels))
		if !slices.Equal(labels, documented) {
			t.Errorf("%s: %s has labels %q, the table says %q", operationsDoc, name, labels, documented)
		}
	}
	for name := range rows {
		if _, ok := fams[name]; !ok {
			t.Errorf("%s: the metric table names %s, which the server does not export", operationsDoc, name)
		}
	}
	for _, m := range docRuntimeMetric.FindAllStringSubmatch(text, -1) {
		if _, ok := fams[m[1]]; !ok {
			t.Errorf("%s names %s, which the server does not export", operationsDoc, m[1])
		}
	}
}
