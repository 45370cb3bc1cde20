package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sampleResults are two engines' fanout runs, a saturate step, an idle run
// and an hft run, as the bench writes them.
func sampleResults() []Result {
	var rs []Result
	for i, label := range []string{"gnet", "std <&>"} {
		h := newHistogram()
		for v := int64(1); v <= 5000; v++ {
			recordLatency(h, v*int64(1000*(i+1)))
		}
		cpu, per, dps := 2.5*float64(i+1), 1.5*float64(i+1), 400000.0/float64(i+1)
		r := Result{
			Label: label, Scenario: "fanout",
			Params:   Params{Proto: ProtoWSJSON, Conns: 10000, Topics: 10, Rate: 10, Size: 200},
			Expected: 1000000, Received: 1000000, DeliveriesPerS: 100000, OfferedPerS: 100000, KeepsUp: true,
			Latency: summarize(h), LatencyDist: distribution(h),
			Server: ServerFigures{PID: 42, CPUSeconds: &cpu, CPUUsPerDelivery: &per, DeliveriesPerCPUS: &dps, RSSKiB: 80000, PeakRSSKiB: 90000},
		}
		rs = append(rs, r)
		r.Scenario, r.Step, r.KeepsUp, r.Missing = "saturate", 3, false, 12
		rs = append(rs, r)
	}
	sub := true
	rs = append(rs, Result{Label: "gnet", Scenario: "idle", Params: Params{Proto: ProtoWSJSON, Conns: 15000, IdleSub: &sub},
		Server: ServerFigures{RSSKiB: 100000}, Idle: &IdleFigures{Conns: 15000, Subscribed: true, ServerBytesPerConn: 4200, OpenS: 3}, KeepsUp: true})
	h := newHistogram()
	recordLatency(h, 25000)
	rs = append(rs, Result{Label: "gnet", Scenario: "hft", Params: Params{Proto: ProtoTCP, Conns: 10, Topics: 1, Rate: 10000, Size: 64},
		Latency: summarize(h), LatencyDist: distribution(h),
		HFT: &HFTFigures{TargetP50Us: 30, TargetP99Us: 100, MeetsTarget: true, Baselines: Baselines{LoopbackRTT: LatencySummary{P50: 18}}}})
	return rs
}

func TestReportFromJSONLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "results.jsonl")
	var buf bytes.Buffer
	for _, r := range sampleResults() {
		if err := Emit(&buf, r); err != nil {
			t.Fatal(err)
		}
		buf.WriteString("\n") // a blank line between runs is fine
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	rs, err := ReadResults(path)
	if err != nil || len(rs) != 6 {
		t.Fatalf("read %d results: %v", len(rs), err)
	}
	var html bytes.Buffer
	if err := WriteHTML(&html, rs); err != nil {
		t.Fatal(err)
	}
	out := html.String()
	for _, want := range []string{
		"<svg", "<polyline", "<rect", "</table>", "</html>",
		"gnet", "std &lt;&amp;&gt;", // labels, escaped
		">fanout<", ">saturate<", ">idle<", ">hft<",
		">90<", ">99<", ">99.9<", // the nines axis
		"Deliveries per server CPU-second", "4.1 KiB/conn", "meets p50≤30µs",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	for _, banned := range []string{"<script", "http://", "https://", "std <&>"} {
		if strings.Contains(out, banned) {
			t.Errorf("report holds %q: it must be self-contained and escaped", banned)
		}
	}
	// One latency line per run that has latencies: 4 fanout/saturate runs
	// and the hft one.
	if n := strings.Count(out, "<polyline"); n != 5 {
		t.Errorf("%d latency lines, want 5", n)
	}

	var md bytes.Buffer
	if err := WriteMarkdown(&md, rs); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(md.String()), "\n")
	if len(lines) != 2+6 || !strings.HasPrefix(lines[0], "| engine | scenario | params | deliveries/s |") {
		t.Errorf("markdown:\n%s", md.String())
	}
	if !strings.Contains(md.String(), "| gnet | fanout | ws-json C=10000 T=10 P=10/s S=200 | 100.0k | 1.50 | 400.0k |") {
		t.Errorf("markdown row:\n%s", md.String())
	}
}

func TestReadResultsError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.jsonl")
	_ = os.WriteFile(path, []byte("{\"label\":\"x\"}\nnot json\n"), 0o644)
	if _, err := ReadResults(path); err == nil || !strings.Contains(err.Error(), ":2:") {
		t.Errorf("error %v, want one naming line 2", err)
	}
}

func TestAxisLabels(t *testing.T) {
	want := []string{"1µs", "10µs", "100µs", "1ms", "10ms", "100ms", "1s", "10s", "100s"}
	for e, w := range want {
		if got := decadeLabel(e); got != w {
			t.Errorf("decade %d: %q, want %q", e, got, w)
		}
	}
	for k, w := range []string{"0", "90", "99", "99.9", "99.99", "99.999"} {
		if got := ninesLabel(k); got != w {
			t.Errorf("%d nines: %q, want %q", k, got, w)
		}
	}
}
