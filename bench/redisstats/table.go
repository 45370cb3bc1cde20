package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/tickfan/tickfan/bench"
)

func tableCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("table", flag.ContinueOnError)
	results := fs.String("results", "", "the bench's results `file` (JSON lines)")
	windows := fs.String("windows", "", "serve's windows `file` (JSON lines)")
	serverCPU := fs.Int("server-cpu", 0, "the `CPU` tickfan was pinned to")
	redisCPU := fs.Int("redis-cpu", -1, "the `CPU` Redis was pinned to (default: -server-cpu)")
	base := fs.String("base", "memory", "the `mode` the others are compared with")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *results == "" || *windows == "" {
		return errors.New("table needs -results and -windows")
	}
	rs, err := bench.ReadResults(*results)
	if err != nil {
		return err
	}
	ws, err := readWindows(*windows)
	if err != nil {
		return err
	}
	if *redisCPU < 0 {
		*redisCPU = *serverCPU
	}
	rows := join(rs, ws, *serverCPU, *redisCPU == *serverCPU)
	bw := bufio.NewWriter(stdout)
	writeRuns(bw, rows)
	fmt.Fprintln(bw)
	writeRatios(bw, rows, *base)
	return bw.Flush()
}

func readWindows(path string) (map[string][]Window, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := map[string][]Window{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for line := 1; sc.Scan(); line++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var w Window
		if err := json.Unmarshal(sc.Bytes(), &w); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		m[w.Label] = append(m[w.Label], w)
	}
	return m, sc.Err()
}

// row is one bench result with its window's figures; NaN is unknown.
type row struct {
	mode, run string
	r         bench.Result
	offered   float64 // pubs/s
	delivered float64 // pubs/s that reached every subscriber, on average
	// Per publication, µs, and Redis commands.
	tickfanUs, redisUs, calls, evalsha float64
	// nodeUs is tickfanUs per node when there are several (A, B).
	nodeUs []float64
	// Shares of the window, %.
	redisPct, redisMainPct, corePct, otherPct, benchPct float64
	errs                                                []string
}

// join pairs each result with its window. redisOnCore says Redis ran on
// the server's core, so that its CPU is not counted as another's there.
func join(rs []bench.Result, ws map[string][]Window, serverCPU int, redisOnCore bool) []row {
	nan := math.NaN()
	seen := map[string]int{}
	var rows []row
	for _, r := range rs {
		mode, run, _ := strings.Cut(r.Label, "/")
		x := row{mode: mode, run: run, r: r,
			tickfanUs: nan, redisUs: nan, calls: nan, evalsha: nan,
			redisPct: nan, redisMainPct: nan, corePct: nan, otherPct: nan, benchPct: nan}
		if run == "" {
			x.run = r.Scenario
		}
		if r.Step > 0 {
			x.run += " step " + strconv.Itoa(r.Step)
		}
		p := r.Params
		x.offered = p.Rate * float64(p.Topics)
		x.delivered = nan
		if p.Conns > 0 {
			x.delivered = r.DeliveriesPerS * float64(p.Topics) / float64(p.Conns)
		}
		if r.WindowS > 0 {
			x.benchPct = 100 * r.Bench.CPUSeconds / r.WindowS
		}
		i := seen[r.Label]
		seen[r.Label]++
		if i >= len(ws[r.Label]) {
			x.errs = append(x.errs, "no window recorded")
			rows = append(rows, x)
			continue
		}
		w := ws[r.Label][i]
		x.errs = append(x.errs, w.Errors...)
		pubs := nan
		if w.Publications != nil && *w.Publications > 0 {
			pubs = *w.Publications
		}
		x.tickfanUs = w.TickfanCPUS * 1e6 / pubs
		if len(w.NodeCPUS) > 1 {
			for _, c := range w.NodeCPUS {
				if c == nil {
					x.nodeUs = append(x.nodeUs, nan)
				} else {
					x.nodeUs = append(x.nodeUs, *c*1e6/pubs)
				}
			}
		}
		used := w.TickfanCPUS
		if rw := w.Redis; rw != nil {
			x.redisUs = rw.CPUS * 1e6 / pubs
			x.calls = float64(rw.Calls) / pubs
			x.evalsha = float64(rw.Commands["evalsha"]) / pubs
			x.redisPct = 100 * rw.CPUS / w.WallS
			x.redisMainPct = 100 * rw.MainCPUS / w.WallS
			if redisOnCore {
				used += rw.CPUS
			}
		}
		if busy, ok := w.Cores[strconv.Itoa(serverCPU)]; ok && w.WallS > 0 {
			x.corePct = 100 * busy / w.WallS
			x.otherPct = max(0, 100*(busy-used)/w.WallS)
		}
		rows = append(rows, x)
	}
	return rows
}

func writeRuns(w io.Writer, rows []row) {
	fmt.Fprintln(w, "| mode | run | offered pubs/s | delivered pubs/s | kept up | p50 µs | p99 µs | tickfan CPU µs/pub (node A + B) | Redis CPU µs/pub | Redis cmds/pub (EVALSHA) | Redis CPU % (main thread) | server core busy % (not ours) | bench CPU % |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, x := range rows {
		r := x.r
		lat50, lat99 := "-", "-"
		if r.Latency.Count > 0 {
			lat50, lat99 = strconv.FormatInt(r.Latency.P50, 10), strconv.FormatInt(r.Latency.P99, 10)
		}
		cmds := "-"
		if !math.IsNaN(x.calls) {
			cmds = fmt.Sprintf("%.2f (%.2f)", x.calls, x.evalsha)
		}
		redisPct := "-"
		if !math.IsNaN(x.redisPct) {
			redisPct = fmt.Sprintf("%.0f (%.0f)", x.redisPct, x.redisMainPct)
		}
		core := "-"
		if !math.IsNaN(x.corePct) {
			core = fmt.Sprintf("%.0f (%.0f)", x.corePct, x.otherPct)
		}
		tickfan := num(x.tickfanUs, 1)
		if len(x.nodeUs) > 1 {
			parts := make([]string, len(x.nodeUs))
			for i, v := range x.nodeUs {
				parts[i] = num(v, 1)
			}
			tickfan += " (" + strings.Join(parts, " + ") + ")"
		}
		fmt.Fprintf(w, "| %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			x.mode, x.run, x.offered, num(x.delivered, 0), keptUp(x), lat50, lat99,
			tickfan, num(x.redisUs, 1), cmds, redisPct, core, num(x.benchPct, 0))
	}
}

// behindShare is the share of the offered rate below which a run that
// delivered everything in the end is said to have fallen behind.
const behindShare = 0.98

// sustained says the run kept up as the bench says (every publication of
// the window delivered, p99 under a second) and delivered at least
// behindShare of the offered rate within the window.
func sustained(x row) bool {
	return x.r.KeepsUp && x.delivered >= behindShare*x.offered
}

// keptUp says yes, or what went wrong.
func keptUp(x row) string {
	r, errs := x.r, x.errs
	var why []string
	if x.delivered < behindShare*x.offered {
		why = append(why, fmt.Sprintf("fell behind: %.0f%% delivered in the window", 100*x.delivered/x.offered))
	}
	if r.Missing > 0 {
		why = append(why, fmt.Sprintf("%d missing", r.Missing))
	}
	if r.Lags > 0 {
		why = append(why, fmt.Sprintf("%d lags", r.Lags))
	}
	if r.Resets > 0 {
		why = append(why, fmt.Sprintf("%d resets", r.Resets))
	}
	if r.Dups > 0 {
		why = append(why, fmt.Sprintf("%d dups", r.Dups))
	}
	if r.PubErrors > 0 {
		why = append(why, fmt.Sprintf("%d pub errors", r.PubErrors))
	}
	if r.Closed > 0 {
		why = append(why, fmt.Sprintf("%d closed", r.Closed))
	}
	if r.Received < r.Expected {
		why = append(why, fmt.Sprintf("%d of %d received", r.Received, r.Expected))
	}
	if r.Latency.P99 >= 1e6 {
		why = append(why, "p99 ≥ 1 s")
	}
	if len(errs) > 0 {
		why = append(why, "stats: "+strings.Join(errs, "; "))
	}
	s := "yes"
	if !sustained(x) {
		s = "no"
	}
	if len(why) > 0 {
		s += " (" + strings.Join(why, ", ") + ")"
	}
	return strings.ReplaceAll(s, "|", "\\|")
}

func num(v float64, prec int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

// writeRatios compares each mode with base: the fixed-rate runs (the mean
// over their repeats) and the highest saturate step that kept up.
func writeRatios(w io.Writer, rows []row, base string) {
	type agg struct {
		n                         int
		p50, p99, tickfan, totalU float64
		best                      float64 // highest offered rate a saturate step kept up with
		bestDelivered             float64 // most delivered pubs/s of any saturate step
		sat                       bool
	}
	var modes []string
	aggs := map[string]*agg{}
	for _, x := range rows {
		a := aggs[x.mode]
		if a == nil {
			a = &agg{}
			aggs[x.mode] = a
			modes = append(modes, x.mode)
		}
		switch {
		case x.r.Scenario == "saturate":
			a.sat = true
			if sustained(x) {
				a.best = max(a.best, x.offered)
			}
			if !math.IsNaN(x.delivered) {
				a.bestDelivered = max(a.bestDelivered, x.delivered)
			}
		case strings.HasPrefix(x.run, "fixed"):
			total := x.tickfanUs
			if !math.IsNaN(x.redisUs) {
				total += x.redisUs
			}
			a.n++
			a.p50 += float64(x.r.Latency.P50)
			a.p99 += float64(x.r.Latency.P99)
			a.tickfan += x.tickfanUs
			a.totalU += total
		}
	}
	b := aggs[base]
	if b == nil {
		fmt.Fprintf(w, "(no %s runs to compare with)\n", base)
		return
	}
	mean := func(a *agg, v float64) float64 {
		if a.n == 0 {
			return math.NaN()
		}
		return v / float64(a.n)
	}
	type line struct {
		name string
		val  func(a *agg) float64
		prec int
	}
	lines := []line{
		{"fixed rate: p50 µs", func(a *agg) float64 { return mean(a, a.p50) }, 0},
		{"fixed rate: p99 µs", func(a *agg) float64 { return mean(a, a.p99) }, 0},
		{"fixed rate: tickfan CPU µs/pub", func(a *agg) float64 { return mean(a, a.tickfan) }, 1},
		{"fixed rate: tickfan + Redis CPU µs/pub", func(a *agg) float64 { return mean(a, a.totalU) }, 1},
		{"saturate: highest rate kept up, pubs/s", func(a *agg) float64 {
			if !a.sat {
				return math.NaN()
			}
			return a.best
		}, 0},
		{"saturate: most delivered, pubs/s", func(a *agg) float64 {
			if !a.sat {
				return math.NaN()
			}
			return a.bestDelivered
		}, 0},
	}
	head := "| |"
	sep := "|---|"
	for _, m := range modes {
		head += " " + m + " |"
		sep += "---|"
	}
	for _, m := range modes {
		if m != base {
			head += " " + m + " ÷ " + base + " |"
			sep += "---|"
		}
	}
	fmt.Fprintln(w, head)
	fmt.Fprintln(w, sep)
	for _, l := range lines {
		s := "| " + l.name + " |"
		for _, m := range modes {
			s += " " + num(l.val(aggs[m]), l.prec) + " |"
		}
		for _, m := range modes {
			if m != base {
				s += " " + num(l.val(aggs[m])/l.val(b), 2) + " |"
			}
		}
		fmt.Fprintln(w, s)
	}
	fmt.Fprintf(w, "\nKept up: every publication due in the window delivered, p99 under 1 s (the bench's keeps_up), and at least %.0f%% of the offered rate delivered within the window.", 100*behindShare)
	if b.n > 0 {
		fmt.Fprintf(w, " Fixed-rate figures are the mean of the %d run(s) of each mode.", b.n)
	}
	fmt.Fprintln(w)
}
