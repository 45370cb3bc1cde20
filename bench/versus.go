package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// The targets of --target.
const (
	TargetTickfan    = "tickfan"
	TargetCentrifugo = "centrifugo"
)

// Versus is a fanout run of the HTTP path (--pub-http, or --target
// centrifugo): Result, and the figures Result has no field for. It is
// written as one JSON line, Result's fields and these side by side, so a
// reader of Results reads it too.
type Versus struct {
	Result
	// Target is the server under test: tickfan or centrifugo.
	Target string `json:"target"`
	// Publish is how publications went in: http.
	Publish string `json:"publish"`
	// LatencySent runs from the sent time the payload carries (the clock
	// just before the publisher wrote the request) to the receipt: the
	// server's and the network's part, without the publisher's lateness.
	LatencySent     LatencySummary `json:"latency_sent_us"`
	LatencySentDist [][2]float64   `json:"latency_sent_dist"`
	// ServerCores and BenchCores are CPU time over the window's length.
	ServerCores *float64 `json:"server_cpu_cores"`
	BenchCores  float64  `json:"bench_cpu_cores"`
}

// EmitVersus writes v as one JSON line.
func EmitVersus(w io.Writer, v Versus) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// versus says whether c runs on the HTTP path.
func (c *Config) versus() bool { return c.PubHTTP || c.Target == TargetCentrifugo }

// checkVersus validates the HTTP path's settings of a config that has
// its defaults.
func (c *Config) checkVersus() error {
	switch c.Target {
	case "", TargetTickfan, TargetCentrifugo:
	default:
		return fmt.Errorf("--target %q: want tickfan or centrifugo", c.Target)
	}
	if !c.versus() {
		return nil
	}
	if c.Scenario != "fanout" {
		return fmt.Errorf("--pub-http and --target centrifugo run the fanout scenario only, not %s", c.Scenario)
	}
	if c.Proto != ProtoWSJSON {
		return fmt.Errorf("--pub-http and --target centrifugo have WebSocket JSON subscribers only, not --proto %s", c.Proto)
	}
	u, err := url.Parse(c.HTTPURL)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("--http %q: the HTTP publisher posts to it, want http://host:port", c.HTTPURL)
	}
	if c.Target == TargetCentrifugo && c.CentrifugoAPIKey == "" {
		return fmt.Errorf("--target centrifugo needs --centrifugo-api-key (its api_key)")
	}
	if c.Target != TargetCentrifugo && c.APIKey == "" {
		return fmt.Errorf("--pub-http needs --api-key (the server's --api-key)")
	}
	return nil
}

// runVersus is fanout on the HTTP path: HTTP publishing, and subscribers
// speaking the target's protocol over WebSocket (wsPool).
func runVersus(ctx context.Context, c *Config, tgt *target, emit func(Result) error) error {
	if c.PubInflight <= 0 {
		c.PubInflight = 64
	}
	if err := checkFDs(c.Conns + c.PubInflight); err != nil {
		return err
	}
	if err := checkServerFDs(c, tgt, c.Conns+c.PubInflight); err != nil {
		return err
	}
	target := c.Target
	if target == "" {
		target = TargetTickfan
	}
	clk := newClock()
	topics := topicNames(c.Scenario, c.Topics)
	pubURL := strings.TrimRight(c.HTTPURL, "/") + "/api/publish"
	dialect, sd := tickfanPub(c.APIKey), dialectTickfan
	if target == TargetCentrifugo {
		dialect, sd = centrifugoPub(c.CentrifugoAPIKey), dialectCentrifugo
	}
	pub, err := newHTTPPublisher(c, clk, topics, pubURL, dialect)
	if err != nil {
		return err
	}
	defer pub.close()
	pool, err := newWSPool(c.WSURL, sd, clk, c.Loops, c.logw())
	if err != nil {
		return err
	}
	defer pool.stop()
	pool.add(c.Conns, topics)
	t0 := time.Now()
	if err := pool.dialAll(ctx, c.Dialers); err != nil {
		return err
	}
	if err := pool.waitReplies(ctx, c.Conns, 30*time.Second); err != nil {
		return err
	}
	c.logf("%d %s connections subscribed in %.1fs", c.Conns, target, time.Since(t0).Seconds())

	v, err := measureVersus(ctx, c, tgt, clk, pub, pool)
	v.Target, v.Publish = target, "http"
	if e := c.EmitVersus; e != nil {
		if eerr := e(v); err == nil {
			err = eerr
		}
	} else if eerr := emit(v.Result); err == nil {
		err = eerr
	}
	return err
}

// measureVersus is session.measure for the HTTP path.
func measureVersus(ctx context.Context, c *Config, tgt *target, clk *clock, pub *httpPublisher, pool *wsPool) (Versus, error) {
	before := tallyOf(pool)
	start := clk.now() + int64(20*time.Millisecond)
	ws := start + int64(c.Warmup)
	we := ws + int64(c.Duration)
	pool.setWindow(ws, we)
	total := c.Rate * float64(len(pub.topics))
	pubErr := make(chan error, 1)
	go func() { pubErr <- pub.run(ctx, total, start, we, ws, we) }()

	sleepUntil(ctx, clk.at(ws))
	m := startMeter(ctx, c, tgt)
	sleepUntil(ctx, clk.at(we))
	v := Versus{Result: baseResult(c)}
	r := &v.Result
	r.Params.PubConns = c.PubInflight
	r.WindowS = c.Duration.Seconds()
	m.stop(ctx, c, r)

	if err := <-pubErr; err != nil {
		return v, err
	}
	if err := pub.waitReplies(ctx, 10*time.Second); err != nil {
		if refused := pub.refusedError(); refused != nil {
			return v, fmt.Errorf("%w (%v)", refused, err)
		}
		return v, err
	}
	lastPub := pub.lastPublished()
	waitFor(ctx, c.Drain, func() bool { return outstandingOf(pool, lastPub) == 0 })

	due, sent, received, arrivals, unknown := pool.windowFigures()
	inWin, late := pub.takeWindow()
	subs := pool.subscribers()
	for t, n := range inWin {
		r.Expected += n * subs[t]
	}
	for _, n := range subs {
		r.OfferedPerS += c.Rate * float64(n)
	}
	r.Received = received
	r.Latency = summarize(due)
	r.LatencyDist = distribution(due)
	v.LatencySent = summarize(sent)
	v.LatencySentDist = distribution(sent)
	pl := summarize(late)
	r.PubLate = &pl
	r.Published, r.PubAcked, r.PubErrors = pub.sent.Load(), pub.acked.Load(), pub.errs.Load()
	d := tallyOf(pool).sub(before)
	r.Missing = d.Missing + outstandingOf(pool, lastPub)
	r.Dups, r.Resets, r.ResetSkipped, r.Lags = d.Dups, d.Resets, d.ResetSkipped, d.Lags
	r.Closed = pool.serverShut.Load()
	r.Errors = pool.errs.Load()
	r.DeliveriesPerS = float64(arrivals) / c.Duration.Seconds()
	perDelivery(r, arrivals)
	if s := r.Server.CPUSeconds; s != nil {
		cores := *s / c.Duration.Seconds()
		v.ServerCores = &cores
	}
	v.BenchCores = r.Bench.CPUSeconds / c.Duration.Seconds()
	r.KeepsUp = r.Expected > 0 && r.Received == r.Expected && r.Missing == 0 && r.Dups == 0 &&
		r.Resets == 0 && r.Lags == 0 && r.Latency.P99 < 1e6
	if unknown > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d publications of topics not subscribed", unknown))
	}
	if e := pool.firstErr.Load(); e != nil {
		r.Notes = append(r.Notes, "first subscriber error: "+*e)
	}
	if busy := v.BenchCores / float64(runtime.NumCPU()); busy > 0.9 {
		r.Notes = append(r.Notes, fmt.Sprintf("the bench used %.0f%% of its CPUs: the figures may show its limits rather than the server's", busy*100))
	}
	if p99 := r.PubLate.P99; p99 > 1000 {
		r.Notes = append(r.Notes, fmt.Sprintf("the publisher was behind schedule: p99 %d µs late (the latency from due shows it, the latency from sent does not)", p99))
	}
	if err := pub.refusedError(); err != nil {
		r.Notes = append(r.Notes, err.Error())
		return v, err
	}
	return v, nil
}

// ReadVersus reads the JSON lines of Versus runs; blank lines are skipped.
func ReadVersus(path string) ([]Versus, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var vs []Versus
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for line := 1; sc.Scan(); line++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var v Versus
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		vs = append(vs, v)
	}
	return vs, sc.Err()
}

// WriteVersusMarkdown writes a markdown table of the runs, then for each
// round (a tickfan run and the centrifugo run after it) and over all
// rounds (medians) the ratios tickfan / Centrifugo of the p50 from due and
// of the CPU per delivery.
func WriteVersusMarkdown(w io.Writer, vs []Versus) error {
	b := bufio.NewWriter(w)
	fmt.Fprintln(b, "| server | deliveries/s | p50 / p99 from due (ms) | p50 / p99 from sent (ms) | server CPU (cores) | CPU µs per delivery | bench CPU (cores) | publisher late p99 (ms) | missing / dups |")
	fmt.Fprintln(b, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, v := range vs {
		name := v.Target
		if v.Label != "" && v.Label != v.Target {
			name += " (" + v.Label + ")"
		}
		late := "?"
		if v.PubLate != nil {
			late = ms(v.PubLate.P99)
		}
		fmt.Fprintf(b, "| %s | %.0f | %s / %s | %s / %s | %s | %s | %.2f | %s | %d / %d |\n", name, v.DeliveriesPerS,
			ms(v.Latency.P50), ms(v.Latency.P99), ms(v.LatencySent.P50), ms(v.LatencySent.P99),
			optF(v.ServerCores, "%.2f"), optF(v.Server.CPUUsPerDelivery, "%.2f"), v.BenchCores, late, v.Missing, v.Dups)
	}
	var p50s, cpus []float64
	var tf *Versus
	for i := range vs {
		v := &vs[i]
		switch v.Target {
		case TargetTickfan:
			tf = v
		case TargetCentrifugo:
			if tf == nil {
				continue
			}
			p50, cpu := ratio(float64(tf.Latency.P50), float64(v.Latency.P50)), ratioP(tf.Server.CPUUsPerDelivery, v.Server.CPUUsPerDelivery)
			p50s, cpus = append(p50s, p50), append(cpus, cpu)
			tf = nil
		}
	}
	fmt.Fprintln(b)
	for i := range p50s {
		fmt.Fprintf(b, "Round %d, tickfan / Centrifugo: p50 from due %.2f, CPU per delivery %.2f.\n", i+1, p50s[i], cpus[i])
	}
	if len(p50s) > 1 {
		fmt.Fprintf(b, "Median over %d rounds: p50 from due %.2f, CPU per delivery %.2f.\n", len(p50s), median(p50s), median(cpus))
	}
	return b.Flush()
}

func ms(us int64) string { return fmt.Sprintf("%.2f", float64(us)/1000) }

func optF(p *float64, format string) string {
	if p == nil {
		return "?"
	}
	return fmt.Sprintf(format, *p)
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func ratioP(a, b *float64) float64 {
	if a == nil || b == nil {
		return 0
	}
	return ratio(*a, *b)
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
