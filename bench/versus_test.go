package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestVersusTable(t *testing.T) {
	cpu := func(v float64) *float64 { return &v }
	run := func(target string, p50 int64, us float64) Versus {
		v := Versus{Target: target, Publish: "http", BenchCores: 0.4, ServerCores: cpu(0.6)}
		v.Label = target
		v.DeliveriesPerS = 100000
		v.Latency = LatencySummary{P50: p50, P99: 4 * p50}
		v.LatencySent = LatencySummary{P50: p50 - 100, P99: 4*p50 - 100}
		v.Server.CPUUsPerDelivery = cpu(us)
		v.PubLate = &LatencySummary{P99: 250}
		return v
	}
	path := filepath.Join(t.TempDir(), "results.jsonl")
	var lines bytes.Buffer
	for _, v := range []Versus{run("tickfan", 5000, 6), run("centrifugo", 14000, 9), run("tickfan", 6000, 6), run("centrifugo", 12000, 8)} {
		if err := EmitVersus(&lines, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(path, lines.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	vs, err := ReadVersus(path)
	if err != nil || len(vs) != 4 || vs[1].Target != "centrifugo" || vs[1].LatencySent.P50 != 13900 {
		t.Fatalf("read back %d runs %+v: %v", len(vs), vs, err)
	}
	// A Versus line is also a Result line.
	rs, err := ReadResults(path)
	if err != nil || len(rs) != 4 || rs[0].Latency.P50 != 5000 {
		t.Fatalf("read as results: %d %v", len(rs), err)
	}
	var out bytes.Buffer
	if err := WriteVersusMarkdown(&out, vs); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| tickfan | 100000 | 5.00 / 20.00 | 4.90 / 19.90 | 0.60 | 6.00 | 0.40 | 0.25 | 0 / 0 |",
		"Round 1, tickfan / Centrifugo: p50 from due 0.36, CPU per delivery 0.67.",
		"Round 2, tickfan / Centrifugo: p50 from due 0.50, CPU per delivery 0.75.",
		"Median over 2 rounds: p50 from due 0.43, CPU per delivery 0.71.",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}
