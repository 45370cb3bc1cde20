package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
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

// The hft table has a row per case with the baselines before / after, the
// lateness, both latencies and the CPU per publication; a result written
// before publications carried their sent time still loads and shows "-"
// where it has no figure.
func TestHFTMarkdown(t *testing.T) {
	lat := func(p50, p99 int64) LatencySummary { return LatencySummary{Count: 100, P50: p50, P99: p99} }
	cpu := 7.25
	echo, echoAfter := lat(21, 40), lat(23, 41)
	var rs []Result
	for _, n := range []int{1, 10} {
		late := lat(25, 90)
		rs = append(rs, Result{Label: "after", Scenario: "hft", Params: Params{Proto: ProtoTCP, Conns: n, Topics: 1},
			Latency: lat(60, 300), LatencySent: lat(35, 120), PubLate: &late,
			Server: ServerFigures{CPUUsPerPublication: &cpu},
			HFT: &HFTFigures{
				Baselines: Baselines{LoopbackRTT: lat(18, 30), EchoRTT: &echo, ServerPingRTT: lat(40, 80)},
				After:     &Baselines{LoopbackRTT: lat(19, 30), EchoRTT: &echoAfter, ServerPingRTT: lat(42, 80)},
			}})
	}
	rs = append(rs, Result{Label: "x", Scenario: "fanout"})
	old := `{"label":"before","scenario":"hft","params":{"proto":"tcp","conns":10,"topics":1},"pub_late_us":{"count":9,"p50":27},` +
		`"latency_us":{"count":9,"p50":254,"p99":7870},"server":{"cpu_s":1.5},` +
		`"hft":{"loopback_rtt_us":{"count":9,"p50":18},"server_ping_rtt_us":{"count":9,"p50":49},"target_p50_us":30}}`
	path := filepath.Join(t.TempDir(), "r.jsonl")
	if err := os.WriteFile(path, []byte(old+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	olds, err := ReadResults(path)
	if err != nil || len(olds) != 1 || olds[0].HFT.LoopbackRTT.P50 != 18 || olds[0].LatencySent.Count != 0 {
		t.Fatalf("old result: %+v, %v", olds, err)
	}
	rs = append(rs, olds...)

	var md bytes.Buffer
	if err := WriteHFTMarkdown(&md, rs); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"| variant | subscribers | loopback RTT p50 | echo RTT p50 | server ping p50 | publisher late p50 | latency from send p50 / p99 | latency from due p50 / p99 | server CPU µs per publication |",
		"|---|---|---|---|---|---|---|---|---|",
		"| after | 1 | 18 / 19 µs | 21 / 23 µs | 40 / 42 µs | 25µs | 35µs / 120µs | 60µs / 300µs | 7.25 |",
		"| after | 10 | 18 / 19 µs | 21 / 23 µs | 40 / 42 µs | 25µs | 35µs / 120µs | 60µs / 300µs | 7.25 |",
		"| before | 10 | 18 µs | - | 49 µs | 27µs | - | 254µs / 7870µs | unknown |",
	}
	if got := strings.Split(strings.TrimSpace(md.String()), "\n"); !slices.Equal(got, want) {
		t.Errorf("hft table:\n%s\nwant:\n%s", md.String(), strings.Join(want, "\n"))
	}

	md.Reset()
	if err := WriteMarkdown(&md, rs[:1]); err != nil {
		t.Fatal(err)
	}
	if s := md.String(); !strings.Contains(s, "| 60µs / 300µs / 0µs | 35µs / 120µs | 25µs / 90µs |") || !strings.Contains(s, "echo RTT p50/p99 21/40 µs") {
		t.Errorf("markdown lacks latency from sent, lateness or the echo baseline:\n%s", s)
	}
}
