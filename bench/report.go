package bench

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// runName is how a run is named in charts and tables: its label, and the
// parameters that tell it from the other runs of its scenario.
func runName(r Result) string {
	label := r.Label
	if label == "" {
		label = "(no label)"
	}
	p := r.Params
	var parts []string
	switch r.Scenario {
	case "idle":
		parts = append(parts, fmt.Sprintf("%d conns", p.Conns))
	case "saturate":
		parts = append(parts, fmt.Sprintf("step %d", r.Step), fmt.Sprintf("%g/s/topic", p.Rate))
	default:
		parts = append(parts, fmt.Sprintf("%d conns", p.Conns), fmt.Sprintf("%g/s/topic", p.Rate))
	}
	parts = append(parts, string(p.Proto))
	return label + " · " + strings.Join(parts, " ")
}

// params is the short parameter summary of the tables.
func params(r Result) string {
	p := r.Params
	switch r.Scenario {
	case "idle":
		sub := "1 sub each"
		if p.IdleSub != nil && !*p.IdleSub {
			sub = "no sub"
		}
		return fmt.Sprintf("%s N=%d, %s", p.Proto, p.Conns, sub)
	case "slow":
		return fmt.Sprintf("%s C=%d (%.0f%% slow) T=%d P=%g/s S=%d", p.Proto, p.Conns, p.SlowFrac*100, p.Topics, p.Rate, p.Size)
	case "herd":
		return fmt.Sprintf("%s C=%d T=%d P=%g/s S=%d gap=%gs", p.Proto, p.Conns, p.Topics, p.Rate, p.Size, p.HerdGapS)
	case "saturate":
		return fmt.Sprintf("step %d: %s C=%d T=%d P=%g/s S=%d", r.Step, p.Proto, p.Conns, p.Topics, p.Rate, p.Size)
	}
	return fmt.Sprintf("%s C=%d T=%d P=%g/s S=%d", p.Proto, p.Conns, p.Topics, p.Rate, p.Size)
}

// extra is the scenario's own headline figure.
func extra(r Result) string {
	switch {
	case r.Idle != nil:
		return fmt.Sprintf("server %.1f KiB/conn, bench %.1f KiB/conn, opened in %.1fs",
			r.Idle.ServerBytesPerConn/1024, r.Idle.BenchBytesPerConn/1024, r.Idle.OpenS)
	case r.Slow != nil:
		return fmt.Sprintf("%d of %d slow conns lagged (%d lag, %d reset, %d close seen); healthy lags %d",
			r.Slow.ConnsLagged, r.Slow.SlowConns, r.Slow.LagsSeen, r.Slow.ResetsSeen, r.Slow.ClosedSeen, r.Slow.HealthyLags)
	case r.Herd != nil:
		return fmt.Sprintf("resubscribed in %.2fs (dials %.2fs), %d rec, %d reset, %d pubs while away",
			r.Herd.ResubscribeS, r.Herd.DialS, r.Herd.Recovered, r.Herd.NotRec, r.Herd.PubsWhileAway)
	case r.HFT != nil:
		meets := "misses"
		if r.HFT.MeetsTarget {
			meets = "meets"
		}
		s := fmt.Sprintf("%s p50≤%dµs p99≤%dµs (from due); %s", meets, r.HFT.TargetP50Us, r.HFT.TargetP99Us, baselineText(r.HFT.Baselines))
		if a := r.HFT.After; a != nil {
			s += "; after the cases: " + baselineText(*a)
		}
		return s
	case r.Scenario == "saturate" && !r.KeepsUp:
		return "saturated"
	}
	return ""
}

// baselineText is the round trips of b, p50/p99.
func baselineText(b Baselines) string {
	s := fmt.Sprintf("loopback RTT p50/p99 %d/%d µs", b.LoopbackRTT.P50, b.LoopbackRTT.P99)
	if b.EchoRTT != nil {
		s += fmt.Sprintf(", echo RTT p50/p99 %d/%d µs", b.EchoRTT.P50, b.EchoRTT.P99)
	}
	return s + fmt.Sprintf(", server ping RTT p50/p99 %d/%d µs", b.ServerPingRTT.P50, b.ServerPingRTT.P99)
}

func fmtF(v *float64, digits int) string {
	if v == nil {
		return "unknown"
	}
	return strconv.FormatFloat(*v, 'f', digits, 64)
}

func fmtRate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func fmtUs(us int64) string {
	switch {
	case us >= 1e6:
		return fmt.Sprintf("%.2fs", float64(us)/1e6)
	case us >= 1e4:
		return fmt.Sprintf("%.1fms", float64(us)/1e3)
	}
	return fmt.Sprintf("%dµs", us)
}

// WriteMarkdown writes one table row per result: engine, scenario,
// parameters, throughput, server cost, latency (from due and from sent)
// and the publisher's lateness, integrity, memory.
func WriteMarkdown(w io.Writer, rs []Result) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, "| engine | scenario | params | deliveries/s | server µs CPU/delivery | deliveries per CPU-s | from due p50 / p99 / p99.9 | from sent p50 / p99 | pub late p50 / p99 | missing | dups | server RSS MiB (peak) | notes |")
	fmt.Fprintln(bw, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		lat := "-"
		if r.Latency.Count > 0 {
			lat = fmtUs(r.Latency.P50) + " / " + fmtUs(r.Latency.P99) + " / " + fmtUs(r.Latency.P999)
		}
		sent, late := p50p99(r.LatencySent), "-"
		if r.PubLate != nil {
			late = p50p99(*r.PubLate)
		}
		dps, cpu, per := "-", "-", "-"
		if r.Scenario != "idle" {
			dps = fmtRate(r.DeliveriesPerS)
			cpu = fmtF(r.Server.CPUUsPerDelivery, 2)
			if r.Server.DeliveriesPerCPUS != nil {
				per = fmtRate(*r.Server.DeliveriesPerCPUS)
			} else {
				per = "unknown"
			}
		}
		rss := "unknown"
		if r.Server.RSSKiB > 0 {
			rss = fmt.Sprintf("%.0f (%.0f)", float64(r.Server.RSSKiB)/1024, float64(r.Server.PeakRSSKiB)/1024)
		}
		fmt.Fprintf(bw, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %d | %d | %s | %s |\n",
			mdCell(r.Label), r.Scenario, mdCell(params(r)), dps, cpu, per, lat, sent, late, r.Missing, r.Dups, rss, mdCell(extra(r)))
	}
	return bw.Flush()
}

// p50p99 is "p50 / p99" of l, or "-" when it counted nothing (a result
// from before publications carried their sent time).
func p50p99(l LatencySummary) string {
	if l.Count == 0 {
		return "-"
	}
	return fmtUs(l.P50) + " / " + fmtUs(l.P99)
}

// WriteHFTMarkdown writes the table of the hft results among rs, one row
// per case: the baselines' p50 measured before the cases / after them,
// the publisher's lateness, latency from the write and from the due time,
// and the server's CPU per publication. Other scenarios are left out.
func WriteHFTMarkdown(w io.Writer, rs []Result) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, "| variant | subscribers | loopback RTT p50 | echo RTT p50 | server ping p50 | publisher late p50 | latency from send p50 / p99 | latency from due p50 / p99 | server CPU µs per publication |")
	fmt.Fprintln(bw, "|---|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		if r.Scenario != "hft" {
			continue
		}
		label := r.Label
		if label == "" {
			label = "(no label)"
		}
		loop, echo, ping := "-", "-", "-"
		if h := r.HFT; h != nil {
			pick := func(f func(Baselines) *LatencySummary) string {
				b := f(h.Baselines)
				if b == nil || b.Count == 0 {
					return "-"
				}
				s := strconv.FormatInt(b.P50, 10)
				if h.After != nil {
					if a := f(*h.After); a != nil && a.Count > 0 {
						s += " / " + strconv.FormatInt(a.P50, 10)
					}
				}
				return s + " µs"
			}
			loop = pick(func(b Baselines) *LatencySummary { return &b.LoopbackRTT })
			echo = pick(func(b Baselines) *LatencySummary { return b.EchoRTT })
			ping = pick(func(b Baselines) *LatencySummary { return &b.ServerPingRTT })
		}
		late := "-"
		if r.PubLate != nil && r.PubLate.Count > 0 {
			late = fmtUs(r.PubLate.P50)
		}
		fmt.Fprintf(bw, "| %s | %d | %s | %s | %s | %s | %s | %s | %s |\n",
			mdCell(label), r.Params.Conns, loop, echo, ping, late, p50p99(r.LatencySent), p50p99(r.Latency), fmtF(r.Server.CPUUsPerPublication, 2))
	}
	return bw.Flush()
}

func mdCell(s string) string { return strings.ReplaceAll(s, "|", "\\|") }

// palette is the line and bar colours, one per label.
var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"}

// dashes tell apart the runs of one label in a chart.
var dashes = []string{"", "6 3", "2 3", "8 3 2 3", "12 4", "1 2"}

// style is how a run is drawn in a chart.
type style struct{ color, dash string }

// styles gives each run of a group its look: the colour of its label and a
// dash per run of that label, or, when one label has all the runs (the
// steps of saturate), a colour per run.
func styles(group []Result, labels []string) []style {
	st := make([]style, len(group))
	single := true
	for _, r := range group {
		single = single && r.Label == group[0].Label
	}
	seen := map[string]int{}
	for i, r := range group {
		if single {
			st[i] = style{color: palette[i%len(palette)]}
			continue
		}
		st[i] = style{color: palette[slices.Index(labels, r.Label)%len(palette)], dash: dashes[seen[r.Label]%len(dashes)]}
		seen[r.Label]++
	}
	return st
}

// WriteHTML writes a self-contained report of rs: per scenario, a latency
// percentile plot (x: percentile on a "nines" scale, y: µs on a log
// scale, a line per run), bar charts of deliveries/s and of deliveries per
// server CPU-second, and a table of every figure. No script, no external
// file: inline SVG and CSS only.
func WriteHTML(w io.Writer, rs []Result) error {
	bw := bufio.NewWriter(w)
	labels := []string{}
	for _, r := range rs {
		if !slices.Contains(labels, r.Label) {
			labels = append(labels, r.Label)
		}
	}

	fmt.Fprint(bw, htmlHead)
	fmt.Fprintf(bw, "<h1>tickfan bench report</h1>\n<p class=meta>%d runs, labels %s; generated %s. Latency is from each publication's due time (open-loop publishing) to its receipt, and, apart, from the clock read just before the publisher's write; the publisher's lateness is the difference. Server CPU is utime+stime of the server process over the measured window.</p>\n",
		len(rs), html.EscapeString(strings.Join(labels, ", ")), time.Now().UTC().Format("2006-01-02 15:04 UTC"))

	for _, sc := range scenarioOrder(rs) {
		var group []Result
		for _, r := range rs {
			if r.Scenario == sc {
				group = append(group, r)
			}
		}
		fmt.Fprintf(bw, "<section><h2>%s</h2>\n<p class=meta>%s</p>\n", html.EscapeString(sc), html.EscapeString(scenarioBlurb(sc)))
		color := styles(group, labels)
		if sc != "idle" {
			latencyChart(bw, group, color)
			fmt.Fprint(bw, "<div class=bars>\n")
			barChart(bw, "Deliveries per second (arrived in the window)", group, color, func(r Result) (float64, bool) {
				return r.DeliveriesPerS, true
			})
			barChart(bw, "Deliveries per server CPU-second", group, color, func(r Result) (float64, bool) {
				if r.Server.DeliveriesPerCPUS == nil {
					return 0, false
				}
				return *r.Server.DeliveriesPerCPUS, true
			})
			fmt.Fprint(bw, "</div>\n")
		} else {
			fmt.Fprint(bw, "<div class=bars>\n")
			barChart(bw, "Server memory per idle connection (bytes)", group, color, func(r Result) (float64, bool) {
				if r.Idle == nil || r.Server.RSSKiB == 0 {
					return 0, false
				}
				return r.Idle.ServerBytesPerConn, true
			})
			fmt.Fprint(bw, "</div>\n")
		}
		figureTable(bw, group)
		fmt.Fprint(bw, "</section>\n")
	}
	fmt.Fprint(bw, "</body></html>\n")
	return bw.Flush()
}

func scenarioOrder(rs []Result) []string {
	var out []string
	for _, s := range Scenarios {
		for _, r := range rs {
			if r.Scenario == s {
				out = append(out, s)
				break
			}
		}
	}
	for _, r := range rs {
		if !slices.Contains(out, r.Scenario) {
			out = append(out, r.Scenario)
		}
	}
	return out
}

func scenarioBlurb(s string) string {
	switch s {
	case "fanout":
		return "C connections over T topics (connection i holds topic i % T), P publications a second per topic of S bytes."
	case "saturate":
		return "fanout with the rate stepped up over the same connections until a step does not keep up (every publication delivered, p99 under 1 s, no lag)."
	case "idle":
		return "N idle WebSocket connections: server RSS growth per connection after a settle pause."
	case "slow":
		return "fanout where a fraction of the connections stop reading after the warm-up; figures are the healthy connections', plus what the stalled ones saw."
	case "herd":
		return "all subscribers drop at once while publishing goes on, then reconnect at once with since; latency includes the recovered publications."
	case "hft":
		return "TCP msgpack subscribers of one topic, one publisher at a fixed rate; targets p50 ≤ 30 µs, p99 ≤ 100 µs (from due); round-trip baselines measured in the same run, before and after its cases, for comparison."
	}
	return ""
}

const htmlHead = `<!doctype html>
<html lang=en><head><meta charset=utf-8><title>tickfan bench report</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1280px;padding:0 16px;color:#222}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 2px;border-bottom:1px solid #ddd;padding-bottom:2px}
h3{font-size:14px;margin:8px 0 4px;font-weight:600}
.meta{color:#666;margin:2px 0 10px}
section{margin-bottom:28px}
.chart{display:inline-block;vertical-align:top;margin:6px 18px 6px 0}
.bars{display:flex;flex-wrap:wrap;gap:18px}
svg text{font:11px system-ui,sans-serif;fill:#333}
.grid{stroke:#e5e5e5;stroke-width:1}.axis{stroke:#888;stroke-width:1}
table{border-collapse:collapse;font-size:12px;margin-top:10px;width:100%}
th,td{border:1px solid #ddd;padding:3px 6px;text-align:right;white-space:nowrap}
th{background:#f4f4f4;position:sticky;top:0}
td.l,th.l{text-align:left}td.n{text-align:left;white-space:normal;color:#555;min-width:240px}
tr:nth-child(even) td{background:#fafafa}
.bad{color:#b00;font-weight:600}.ok{color:#070}
.sw{display:inline-block;width:18px;height:0;border-top:3px solid;vertical-align:middle;margin-right:6px}
.legend{font-size:12px;margin:4px 0 0 60px}.legend div{margin:1px 0}
</style></head><body>
`

// latencyChart draws the percentile lines of the runs in group.
func latencyChart(w io.Writer, group []Result, st []style) {
	const W, H, left, right, top, bottom = 760, 380, 64, 36, 24, 42
	pw, ph := float64(W-left-right), float64(H-top-bottom)
	type line struct {
		r   Result
		st  style
		pts [][2]float64 // nines, µs
	}
	var lines []line
	maxX, minY, maxY := 2.0, math.Inf(1), math.Inf(-1)
	for i, r := range group {
		if len(r.LatencyDist) == 0 {
			continue
		}
		l := line{r: r, st: st[i]}
		last := 0.0
		for _, p := range r.LatencyDist {
			x := 0.0
			if p[0] >= 100 {
				x = math.Log10(float64(max(r.Latency.Count, 1))) // the max at the 1/n tail
				x = max(x, last)
			} else {
				x = -math.Log10(1 - p[0]/100)
			}
			last = x
			y := max(p[1], 1)
			l.pts = append(l.pts, [2]float64{x, y})
			maxX = max(maxX, x)
			minY, maxY = min(minY, y), max(maxY, y)
		}
		lines = append(lines, l)
	}
	if len(lines) == 0 {
		fmt.Fprint(w, "<p class=meta>No latency recorded.</p>\n")
		return
	}
	maxX = math.Ceil(maxX)
	y0, y1 := math.Floor(math.Log10(minY)), math.Ceil(math.Log10(maxY))
	if y1 <= y0 {
		y1 = y0 + 1
	}
	sx := func(x float64) float64 { return float64(left) + x/maxX*pw }
	sy := func(us float64) float64 { return float64(top) + (y1-math.Log10(us))/(y1-y0)*ph }

	fmt.Fprintf(w, "<div class=\"chart\"><h3>Latency by percentile (µs, log scale)</h3>\n<svg width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"latency percentiles\">\n", W, H, W, H)
	for k := 0; k <= int(maxX); k++ {
		x := sx(float64(k))
		fmt.Fprintf(w, "<line stroke=\"#e5e5e5\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" />\n", x, top, x, H-bottom)
		fmt.Fprintf(w, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", x, H-bottom+16, ninesLabel(k))
	}
	for e := int(y0); e <= int(y1); e++ {
		y := sy(math.Pow(10, float64(e)))
		fmt.Fprintf(w, "<line stroke=\"#e5e5e5\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" />\n", left, y, W-right, y)
		fmt.Fprintf(w, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" dominant-baseline=\"middle\">%s</text>\n", left-6, y, decadeLabel(e))
	}
	fmt.Fprintf(w, "<line stroke=\"#888\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" />\n", left, H-bottom, W-right, H-bottom)
	fmt.Fprintf(w, "<line stroke=\"#888\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" />\n", left, top, left, H-bottom)
	fmt.Fprintf(w, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">percentile</text>\n", float64(left)+pw/2, H-6)

	var legend strings.Builder
	for _, l := range lines {
		c, dash := l.st.color, l.st.dash
		var pts strings.Builder
		for _, p := range l.pts {
			fmt.Fprintf(&pts, "%.1f,%.1f ", sx(p[0]), sy(p[1]))
		}
		name := html.EscapeString(runName(l.r))
		fmt.Fprintf(w, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" stroke-dasharray=\"%s\" points=\"%s\"><title>%s</title></polyline>\n", c, dash, strings.TrimSpace(pts.String()), name)
		mx := l.pts[len(l.pts)-1]
		fmt.Fprintf(w, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"><title>%s max %s</title></circle>\n", sx(mx[0]), sy(mx[1]), c, name, fmtUs(int64(mx[1])))
		fmt.Fprintf(&legend, "<div><span class=sw style=\"border-color:%s;border-top-style:%s\"></span>%s: p50 %s, p99 %s, p99.9 %s, max %s</div>\n",
			c, borderStyle(dash), name, fmtUs(l.r.Latency.P50), fmtUs(l.r.Latency.P99), fmtUs(l.r.Latency.P999), fmtUs(l.r.Latency.Max))
	}
	fmt.Fprintf(w, "</svg>\n<div class=legend>%s</div></div>\n", legend.String())
}

func borderStyle(dash string) string {
	switch {
	case dash == "":
		return "solid"
	case strings.HasPrefix(dash, "2") || strings.HasPrefix(dash, "1"):
		return "dotted"
	}
	return "dashed"
}

// decadeLabel names 10^e µs: 1µs, 10µs, 100µs, 1ms ... 10s.
func decadeLabel(e int) string {
	units := []string{"µs", "ms", "s"}
	u := min(max(e, 0)/3, len(units)-1)
	return strconv.FormatFloat(math.Pow(10, float64(e-3*u)), 'f', -1, 64) + units[u]
}

// ninesLabel names k nines: 0, 90, 99, 99.9...
func ninesLabel(k int) string {
	switch k {
	case 0:
		return "0"
	case 1:
		return "90"
	case 2:
		return "99"
	}
	return "99." + strings.Repeat("9", k-2)
}

// barChart draws one horizontal bar per run of value(r); a run whose value
// is unknown gets "unknown" instead of a bar.
func barChart(w io.Writer, title string, group []Result, st []style, value func(Result) (float64, bool)) {
	const labelW, barW, rowH, top = 290, 300, 20, 8
	H := top + rowH*len(group) + 8
	W := labelW + barW + 80
	maxV := 0.0
	for _, r := range group {
		if v, ok := value(r); ok {
			maxV = max(maxV, v)
		}
	}
	fmt.Fprintf(w, "<div class=\"chart\"><h3>%s</h3>\n<svg width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"%s\">\n", html.EscapeString(title), W, H, W, H, html.EscapeString(title))
	for i, r := range group {
		y := top + i*rowH
		fmt.Fprintf(w, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" dominant-baseline=\"middle\">%s</text>\n", labelW-6, y+rowH/2, html.EscapeString(runName(r)))
		v, ok := value(r)
		if !ok {
			fmt.Fprintf(w, "<text x=\"%d\" y=\"%d\" dominant-baseline=\"middle\" fill=\"#999\">unknown</text>\n", labelW+4, y+rowH/2)
			continue
		}
		bw := 0.0
		if maxV > 0 {
			bw = v / maxV * barW
		}
		fmt.Fprintf(w, "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"><title>%s: %.0f</title></rect>\n", labelW, y+3, bw, rowH-6, st[i].color, html.EscapeString(runName(r)), v)
		fmt.Fprintf(w, "<text x=\"%.1f\" y=\"%d\" dominant-baseline=\"middle\">%s</text>\n", float64(labelW)+bw+4, y+rowH/2, fmtRate(v))
	}
	fmt.Fprint(w, "</svg></div>\n")
}

// figureTable lists every figure of the runs in group.
func figureTable(w io.Writer, group []Result) {
	fmt.Fprint(w, "<div style=\"overflow-x:auto\"><table><thead><tr>")
	heads := []string{"label", "params", "offered/s", "deliveries/s", "expected", "received", "missing", "dups", "resets", "lags",
		"p50", "p90", "p99", "p99.9", "max", "from sent p50", "from sent p99", "pub late p50", "pub late p99", "server CPU s", "µs CPU / delivery", "deliveries / CPU-s",
		"server RSS MiB", "peak RSS MiB", "bench CPU s", "bench RSS MiB", "published", "pub errors", "keeps up", "notes"}
	for i, h := range heads {
		cls := ""
		if i < 2 || i == len(heads)-1 {
			cls = " class=l"
		}
		fmt.Fprintf(w, "<th%s>%s</th>", cls, html.EscapeString(h))
	}
	fmt.Fprint(w, "</tr></thead><tbody>\n")
	for _, r := range group {
		bad := func(n int64) string {
			if n != 0 {
				return fmt.Sprintf("<span class=bad>%d</span>", n)
			}
			return "0"
		}
		keeps := "<span class=ok>yes</span>"
		if !r.KeepsUp {
			keeps = "<span class=bad>no</span>"
		}
		lat := func(v int64) string {
			if r.Latency.Count == 0 {
				return "-"
			}
			return fmtUs(v)
		}
		sentLat := func(v int64) string {
			if r.LatencySent.Count == 0 {
				return "-"
			}
			return fmtUs(v)
		}
		late := func(f func(*LatencySummary) int64) string {
			if r.PubLate == nil || r.PubLate.Count == 0 {
				return "-"
			}
			return fmtUs(f(r.PubLate))
		}
		notes := extra(r)
		for _, n := range r.Notes {
			notes += "; " + n
		}
		notes = strings.TrimPrefix(notes, "; ")
		if r.Server.Note != "" {
			notes += "; " + r.Server.Note
		}
		cells := []string{
			html.EscapeString(r.Label), html.EscapeString(params(r)),
			fmtRate(r.OfferedPerS), fmtRate(r.DeliveriesPerS),
			strconv.FormatInt(r.Expected, 10), strconv.FormatInt(r.Received, 10),
			bad(r.Missing), bad(r.Dups), strconv.FormatInt(r.Resets, 10), strconv.FormatInt(r.Lags, 10),
			lat(r.Latency.P50), lat(r.Latency.P90), lat(r.Latency.P99), lat(r.Latency.P999), lat(r.Latency.Max),
			sentLat(r.LatencySent.P50), sentLat(r.LatencySent.P99), late(func(l *LatencySummary) int64 { return l.P50 }), late(func(l *LatencySummary) int64 { return l.P99 }),
			fmtF(r.Server.CPUSeconds, 2), fmtF(r.Server.CPUUsPerDelivery, 2), fmtF(r.Server.DeliveriesPerCPUS, 0),
			fmt.Sprintf("%.1f", float64(r.Server.RSSKiB)/1024), fmt.Sprintf("%.1f", float64(r.Server.PeakRSSKiB)/1024),
			fmt.Sprintf("%.2f", r.Bench.CPUSeconds), fmt.Sprintf("%.1f", float64(r.Bench.RSSKiB)/1024),
			strconv.FormatInt(r.Published, 10), bad(r.PubErrors), keeps, html.EscapeString(notes),
		}
		fmt.Fprint(w, "<tr>")
		for i, c := range cells {
			cls := ""
			switch {
			case i < 2:
				cls = " class=l"
			case i == len(cells)-1:
				cls = " class=n"
			}
			fmt.Fprintf(w, "<td%s>%s</td>", cls, c)
		}
		fmt.Fprint(w, "</tr>\n")
	}
	fmt.Fprint(w, "</tbody></table></div>\n")
}
