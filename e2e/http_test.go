package e2e

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tickfan/tickfan/server"
)

func TestHTTPPublish(t *testing.T) {
	t.Parallel()
	n := start(t)
	c := dialWS(t, n, protoJSON)
	c.sub(t, []string{"http.one", "http.two"}, nil)

	r := n.publishBody(t, item("http.one", payload("h", 1), false))
	if r.status != http.StatusOK {
		t.Fatalf("single publish: status %d %s, want 200", r.status, r.raw)
	}
	p1, err := asPos(r.body)
	if err != nil || p1.S != 1 {
		t.Fatalf("single publish answered %s, want exactly {\"e\":..,\"s\":1}", r.raw)
	}
	c.nextPub(t, "http.one", 1, payload("h", 1), false)

	p2 := n.publish(t, "http.one", payload("h", 2), true)
	if p2 != (pos{E: p1.E, S: 2}) {
		t.Fatalf("snapshot publish → %+v, want s 2 in epoch %q", p2, p1.E)
	}
	c.nextPub(t, "http.one", 2, payload("h", 2), true)

	ps := n.publishBatch(t, []map[string]any{
		item("http.one", payload("h", 3), false),
		item("http.two", payload("t", 1), true),
		item("http.one", payload("h", 4), false),
	})
	want := []pos{{p1.E, 3}, {ps[1].E, 1}, {p1.E, 4}}
	for i := range want {
		if ps[i] != want[i] {
			t.Fatalf("batch → %+v, want %+v", ps, want)
		}
	}
	// One topic's publications arrive in order; the two topics may interleave.
	expect := map[string][]pubMsg{
		"http.one": {{S: 3, D: payload("h", 3)}, {S: 4, D: payload("h", 4)}},
		"http.two": {{S: 1, D: payload("t", 1), Snap: true}},
	}
	for range 3 {
		m := c.next(t)
		p, err := asPub(m)
		if err != nil {
			t.Fatal(err)
		}
		if len(expect[p.T]) == 0 {
			t.Fatalf("unexpected %s", m)
		}
		w := expect[p.T][0]
		if err := expectPub(m, p.T, w.S, w.D, w.Snap); err != nil {
			t.Fatal(err)
		}
		expect[p.T] = expect[p.T][1:]
	}
}

func TestHTTPPublishAuth(t *testing.T) {
	t.Parallel()
	n := start(t)
	check := healthy(t, n) // a rejection must cost a healthy client nothing
	for _, auth := range []string{"", "apikey", "apikey ", "apikey wrong", "apikey kk", "Bearer " + apiKey, apiKey} {
		r, err := n.post("/api/publish", auth, item("http.auth", 1, false))
		if err != nil {
			t.Fatal(err)
		}
		expectHTTPErr(t, "Authorization "+strconv.Quote(auth), r, http.StatusUnauthorized)
		r, err = n.post("/api/publish", auth, map[string]any{"batch": []any{item("http.auth", 1, false)}})
		if err != nil {
			t.Fatal(err)
		}
		expectHTTPErr(t, "batch, Authorization "+strconv.Quote(auth), r, http.StatusUnauthorized)
	}
	if p := n.current(t, "http.auth"); p.S != 0 {
		t.Fatalf("refused publishes moved http.auth to %+v", p)
	}

	// A server without an API key refuses every publish.
	off := start(t, func(c *server.Config) { c.APIKey = "" })
	r, err := off.post("/api/publish", "apikey "+apiKey, item("http.auth", 1, false))
	if err != nil {
		t.Fatal(err)
	}
	expectHTTPErr(t, "server without --api-key", r, http.StatusUnauthorized)
	check()
}

func TestHTTPBatchAllOrNothing(t *testing.T) {
	t.Parallel()
	n := start(t)
	check := healthy(t, n) // a rejection must cost a healthy client nothing
	const topic = "http.batch"
	first := n.publish(t, topic, 0, false)
	cases := map[string][]any{
		"bad topic last":   {item(topic, 1, false), item(topic, 2, false), item("bad name", 3, false)},
		"bad topic first":  {item("bad/name", 1, false), item(topic, 2, false)},
		"bad topic middle": {item(topic, 1, false), item("", 2, false), item(topic, 3, false)},
		"topic too long":   {item(topic, 1, false), item(strings.Repeat("x", 201), 2, false)},
	}
	for name, batch := range cases {
		r := n.publishBody(t, map[string]any{"batch": batch})
		expectHTTPErr(t, name, r, http.StatusBadRequest)
	}
	// Nothing of them was published: the next publication is s 2.
	if p := n.publish(t, topic, 1, false); p != (pos{E: first.E, S: 2}) {
		t.Fatalf("publish after refused batches → %+v, want s 2: a refused batch published part of itself", p)
	}
	// Bodies that are no publication at all.
	for name, body := range map[string][]byte{
		"not json":   []byte("not json"),
		"empty":      {},
		"bad single": []byte(`{"t":"bad name","d":1}`),
	} {
		r, err := n.post("/api/publish", "apikey "+apiKey, body)
		if err != nil {
			t.Fatal(err)
		}
		expectHTTPErr(t, name, r, http.StatusBadRequest)
	}
	if p := n.current(t, topic); p.S != 2 {
		t.Fatalf("%s moved to %+v after refused requests, want s 2", topic, p)
	}
	check()
}

func TestHTTPBatchTooLarge(t *testing.T) {
	t.Parallel()
	n := start(t)
	check := healthy(t, n) // a rejection must cost a healthy client nothing
	const topic = "http.large"
	items := make([]any, 1001) // the default batch limit is 1000
	for i := range items {
		items[i] = item(topic, i, false)
	}
	r := n.publishBody(t, map[string]any{"batch": items})
	expectHTTPErr(t, "batch of 1001", r, http.StatusRequestEntityTooLarge)
	if p := n.current(t, topic); p.S != 0 {
		t.Fatalf("a refused batch moved %s to %+v", topic, p)
	}
	// The limit itself is fine.
	ps := n.publishBatch(t, func() []map[string]any {
		out := make([]map[string]any, 1000)
		for i := range out {
			out[i] = item(topic, i, false)
		}
		return out
	}())
	if ps[999].S != 1000 {
		t.Fatalf("batch of 1000 ended at %+v, want s 1000", ps[999])
	}
	check()
}

func TestHTTPEndpoints(t *testing.T) {
	t.Parallel()
	n := start(t)
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		r, err := n.get(path)
		if err != nil {
			t.Fatal(err)
		}
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: status %d %s, want 200", path, r.status, r.raw)
		}
	}
}

func TestHTTPMetrics(t *testing.T) {
	t.Parallel()
	n := start(t)
	const topic, count = "metrics.t", 10
	subs := []*client{dialWS(t, n, protoJSON), dialWS(t, n, protoMsgpack), dialTCP(t, n)}
	for _, c := range subs {
		c.sub1(t, topic, nil)
	}
	for i := 1; i <= count; i++ {
		n.publish(t, topic, i, false)
	}
	for _, c := range subs {
		for i := 1; i <= count; i++ {
			c.nextPub(t, topic, uint64(i), i, false)
		}
	}
	m := n.metrics(t)
	if got := m.sum("tickfan_connections", "transport", "ws") + m.sum("tickfan_connections", "transport", "tcp"); got != float64(len(subs)) {
		t.Errorf("tickfan_connections sums to %v with %d clients connected, want %d", got, len(subs), len(subs))
	}
	if got := m.sum("tickfan_publications_total"); got != count {
		t.Errorf("tickfan_publications_total = %v after %d publications, want %d", got, count, count)
	}
	if got := m.sum("tickfan_deliveries_total"); got < count*float64(len(subs)) {
		t.Errorf("tickfan_deliveries_total = %v after %d publications to %d subscribers, want at least %d", got, count, len(subs), count*len(subs))
	}
}

// metricFamilies is a Prometheus text exposition, parsed.
type metricFamilies map[string]*dto.MetricFamily

// metrics fetches and parses n's /metrics; an answer other than 200 fails
// the test.
func (n *node) metrics(t testing.TB) metricFamilies {
	t.Helper()
	r, err := n.get("/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if r.status != http.StatusOK {
		t.Fatalf("GET /metrics: status %d", r.status)
	}
	return parseMetrics(t, r.raw)
}

// parseMetrics parses /metrics; a line that does not parse fails the test.
func parseMetrics(t testing.TB, raw []byte) metricFamilies {
	t.Helper()
	tp := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := tp.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	return fams
}

// sum adds the samples of the counter or gauge name whose labels include
// the given name, value pairs.
func (m metricFamilies) sum(name string, labels ...string) float64 {
	var s float64
	for _, mt := range m[name].GetMetric() {
		if hasLabels(mt, labels) {
			s += mt.GetCounter().GetValue() + mt.GetGauge().GetValue() + mt.GetUntyped().GetValue()
		}
	}
	return s
}

func hasLabels(mt *dto.Metric, pairs []string) bool {
	for i := 0; i+1 < len(pairs); i += 2 {
		found := false
		for _, l := range mt.GetLabel() {
			found = found || l.GetName() == pairs[i] && l.GetValue() == pairs[i+1]
		}
		if !found {
			return false
		}
	}
	return true
}
