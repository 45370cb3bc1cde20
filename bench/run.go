package bench

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Run runs cfg.Scenario, or each of Scenarios for "all", against a server
// that is already running, and hands each result to emit as soon as it is
// known. It stops at the first scenario that fails.
func Run(ctx context.Context, cfg Config, emit func(Result) error) error {
	scenarios := []string{cfg.Scenario}
	switch {
	case cfg.Scenario == "all":
		scenarios = Scenarios
	case cfg.Scenario == "":
		return fmt.Errorf("no scenario: want one of %s or all", strings.Join(Scenarios, ", "))
	case !slices.Contains(Scenarios, cfg.Scenario) && cfg.Scenario != "soak":
		return fmt.Errorf("unknown scenario %q: want one of %s, soak or all", cfg.Scenario, strings.Join(Scenarios, ", "))
	}
	var tgt *target
	for _, s := range scenarios {
		c := cfg.Defaults(s)
		if err := c.check(); err != nil {
			return err
		}
		if err := c.checkVersus(); err != nil {
			return err
		}
		if tgt == nil {
			var err error
			if tgt, err = findTarget(&c); err != nil {
				return err
			}
		}
		c.logf("%s: %s", s, describe(&c))
		var err error
		switch s {
		case "fanout":
			if c.versus() {
				err = runVersus(ctx, &c, tgt, emit)
				break
			}
			err = runFanout(ctx, &c, tgt, emit)
		case "saturate":
			err = runSaturate(ctx, &c, tgt, emit)
		case "idle":
			err = runIdle(ctx, &c, tgt, emit)
		case "slow":
			err = runSlow(ctx, &c, tgt, emit)
		case "herd":
			err = runHerd(ctx, &c, tgt, emit)
		case "hft":
			err = runHFT(ctx, &c, tgt, emit)
		case "soak":
			err = runSoak(ctx, &c, tgt, emit)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

func describe(c *Config) string {
	conns := strconv.Itoa(c.Conns)
	switch c.Scenario {
	case "idle":
		return fmt.Sprintf("conns=%d subscribed=%v proto=%s settle=%v", c.Conns, !c.IdleNoSub, c.Proto, c.Settle)
	case "hft":
		conns = strings.Trim(strings.Join(strings.Fields(fmt.Sprint(c.HFTConns)), ","), "[]")
	case "soak":
		return fmt.Sprintf("conns=%d (tcp, ws-json, ws-msgpack in turn) topics=%d rate=%g/s/topic size=%d phases=%s",
			c.Conns, c.Topics, c.Rate, c.Size, describePhases(c.SoakPhases))
	}
	return fmt.Sprintf("conns=%s topics=%d rate=%g/s/topic size=%d proto=%s duration=%v warmup=%v",
		conns, c.Topics, c.Rate, c.Size, c.Proto, c.Duration, c.Warmup)
}

// target is the server process, when known.
type target struct {
	pid  int // 0: unknown
	note string
}

// findTarget takes --pid, or looks for the process listening on the
// WebSocket port. A --pid that names no process is an error; a server not
// found is a note, and its CPU figures are reported as unknown.
func findTarget(c *Config) (*target, error) {
	if c.PID != 0 {
		if err := procAlive(c.PID); err != nil {
			return nil, fmt.Errorf("--pid: %w", err)
		}
		return &target{pid: c.PID}, nil
	}
	pid, err := findListener(c.wsPort())
	if err != nil {
		t := &target{note: "server CPU and memory unknown: " + err.Error() + "; give --pid"}
		c.logf("%s", t.note)
		return t, nil
	}
	c.logf("server pid %d (listening on port %d)", pid, c.wsPort())
	return &target{pid: pid}, nil
}

// meter reads the server's and the bench's CPU time and the server's
// counters at the start of a window and again at its end.
type meter struct {
	tgt      *target
	cpu0     time.Duration
	cpuOK    bool
	self0    time.Duration
	metrics0 map[string]float64
	started  time.Time
}

func startMeter(ctx context.Context, c *Config, tgt *target) *meter {
	m := &meter{tgt: tgt, started: time.Now()}
	if tgt.pid != 0 {
		cpu, err := procCPU(tgt.pid)
		m.cpu0, m.cpuOK = cpu, err == nil
	}
	m.self0, _ = procCPU(os.Getpid())
	m.metrics0, _ = scrapeMetrics(ctx, c.HTTPURL)
	return m
}

// stop fills the server and bench figures of r at the window's end.
func (m *meter) stop(ctx context.Context, c *Config, r *Result) {
	r.Server.PID = m.tgt.pid
	r.Server.Note = m.tgt.note
	if m.cpuOK {
		if cpu, err := procCPU(m.tgt.pid); err == nil {
			s := (cpu - m.cpu0).Seconds()
			r.Server.CPUSeconds = &s
		}
	}
	if m.tgt.pid != 0 {
		if mem, err := procMem(m.tgt.pid); err == nil {
			r.Server.RSSKiB, r.Server.PeakRSSKiB = mem.RSS, mem.Peak
		}
	}
	if self, err := procCPU(os.Getpid()); err == nil {
		r.Bench.CPUSeconds = (self - m.self0).Seconds()
	}
	if mem, err := procMem(os.Getpid()); err == nil {
		r.Bench.RSSKiB = mem.RSS
	}
	r.Bench.Goroutines = runtime.NumGoroutine()
	if after, err := scrapeMetrics(ctx, c.HTTPURL); err == nil {
		r.Server.Metrics = metricsDelta(m.metrics0, after)
	}
}

// perDelivery derives the server's CPU cost per delivery from its CPU
// time over the window and the deliveries that arrived in it.
func perDelivery(r *Result, deliveries int64) {
	if r.Server.CPUSeconds == nil || deliveries <= 0 {
		return
	}
	s := *r.Server.CPUSeconds
	per := s * 1e6 / float64(deliveries)
	r.Server.CPUUsPerDelivery = &per
	if s > 0 {
		d := float64(deliveries) / s
		r.Server.DeliveriesPerCPUS = &d
	}
}

// baseResult fills the fields every scenario shares.
func baseResult(c *Config) Result {
	return Result{
		Time:     time.Now().UTC().Format(time.RFC3339),
		Label:    c.Label,
		Scenario: c.Scenario,
		Params: Params{
			Proto: c.Proto, Conns: c.Conns, Topics: c.Topics, Rate: c.Rate, Size: c.Size,
			DurationS: c.Duration.Seconds(), WarmupS: c.Warmup.Seconds(),
			PubConns: c.PubConns, Loops: c.Loops, Pace: c.Pace,
			WS: c.WSURL, TCP: c.TCPAddr,
		},
	}
}

// session is a publisher and a pool of subscribers, each connection i
// holding topic i % Topics, set up and subscribed.
type session struct {
	cfg    *Config
	tgt    *target
	clk    *clock
	topics []string
	pub    *publisher
	pool   *pool
}

// openSession connects the publisher and subscribes conns connections;
// extra is connections the caller opens itself (for the fd check).
func openSession(ctx context.Context, c *Config, tgt *target, conns, extra int) (*session, error) {
	if err := checkFDs(conns + extra + c.PubConns); err != nil {
		return nil, err
	}
	if err := checkServerFDs(c, tgt, conns+extra+c.PubConns); err != nil {
		return nil, err
	}
	s := &session{cfg: c, tgt: tgt, clk: newClock(), topics: topicNames(c.Scenario, c.Topics)}
	var err error
	if s.pub, err = newPublisher(ctx, c, s.clk, s.topics, c.Size, c.PubConns); err != nil {
		return nil, err
	}
	if s.pool, err = newPool(c, c.Proto, s.clk); err != nil {
		s.pub.close()
		return nil, err
	}
	s.pool.add(conns, func(i int) []string { return []string{s.topics[i%len(s.topics)]} })
	t0 := time.Now()
	if err := s.pool.dialAll(ctx, c.Dialers, true, false); err != nil {
		s.close()
		return nil, err
	}
	if err := s.pool.waitReplies(ctx, 0, conns, 30*time.Second); err != nil {
		s.close()
		return nil, err
	}
	if n := s.pool.errs.Load(); n > 0 {
		s.close()
		return nil, fmt.Errorf("%d subscriptions failed: %s", n, *s.pool.firstErr.Load())
	}
	c.logf("%d connections subscribed in %.1fs", conns, time.Since(t0).Seconds())
	return s, nil
}

// checkServerFDs fails when the server's own open-file limit is below
// the connections the run opens (it would close them with 4006).
func checkServerFDs(c *Config, tgt *target, conns int) error {
	if tgt.pid == 0 {
		return nil
	}
	if lim, ok := serverFDLimit(tgt.pid); ok && lim < int64(conns)+fdMargin {
		return fmt.Errorf("the server's open-file limit is %d (/proc/%d/limits), below the %d connections of this run: raise it before starting the server (ulimit -n)", lim, tgt.pid, conns)
	}
	return nil
}

func (s *session) close() {
	s.pool.stop()
	s.pub.close()
}

// measure publishes at rate per topic for warmup then duration, measures
// the duration, and waits (up to Drain) for the stragglers. during, when
// set, runs at the window's start in this goroutine (herd's storm, slow's
// stall) while publishing goes on. It returns the result with every
// figure filled but the scenario's own.
func (s *session) measure(ctx context.Context, rate float64, during func() error) (Result, error) {
	c := s.cfg
	before := tallyOf(s.pool)
	start := s.clk.now() + int64(20*time.Millisecond)
	ws := start + int64(c.Warmup)
	we := ws + int64(c.Duration)
	s.pool.setWindow(ws, we)
	total := rate * float64(len(s.topics))
	pubErr := make(chan error, 1)
	go func() { pubErr <- s.pub.run(ctx, total, start, we, ws, we) }()

	sleepUntil(ctx, s.clk.at(ws))
	m := startMeter(ctx, c, s.tgt)
	var hookErr error
	if during != nil {
		hookErr = during()
	}
	sleepUntil(ctx, s.clk.at(we))
	r := baseResult(c)
	r.Params.Rate = rate
	r.WindowS = c.Duration.Seconds()
	m.stop(ctx, c, &r)

	if err := <-pubErr; err != nil {
		return r, err
	}
	if hookErr != nil {
		return r, hookErr
	}
	if err := s.pub.waitReplies(ctx, 10*time.Second); err != nil {
		// Refusals say why better than the replies that never came (a
		// server closes a connection that goes on past --cmd-rate).
		if refused := s.pub.refusedError(total); refused != nil {
			return r, fmt.Errorf("%w (%v)", refused, err)
		}
		return r, err
	}
	lastPub := s.pub.lastPublished()
	waitFor(ctx, c.Drain, func() bool { return outstandingOf(s.pool, lastPub) == 0 })

	h, hSent, received, arrivals, unknown := s.pool.windowFigures()
	inWin, late := s.pub.takeWindow()
	subs := s.pool.subscribers()
	for t, n := range inWin {
		r.Expected += n * subs[t]
		r.PubsInWindow += n
	}
	for _, n := range subs {
		r.OfferedPerS += rate * float64(n)
	}
	r.Received = received
	r.Latency = summarize(h)
	r.LatencyDist = distribution(h)
	r.LatencySent = summarize(hSent)
	pl := summarize(late)
	r.PubLate = &pl
	r.Published, r.PubAcked, r.PubErrors = s.pub.sent.Load(), s.pub.acked.Load(), s.pub.errs.Load()
	d := tallyOf(s.pool).sub(before)
	r.Missing = d.Missing + outstandingOf(s.pool, lastPub)
	r.Dups, r.Resets, r.ResetSkipped, r.Lags = d.Dups, d.Resets, d.ResetSkipped, d.Lags
	r.Closed = s.pool.serverShut.Load()
	r.Errors = s.pool.errs.Load()
	r.DeliveriesPerS = float64(arrivals) / c.Duration.Seconds()
	perDelivery(&r, arrivals)
	if r.Server.CPUSeconds != nil && r.PubsInWindow > 0 {
		per := *r.Server.CPUSeconds * 1e6 / float64(r.PubsInWindow)
		r.Server.CPUUsPerPublication = &per
	}
	r.KeepsUp = r.Expected > 0 && r.Received == r.Expected && r.Missing == 0 && r.Dups == 0 &&
		r.Resets == 0 && r.Lags == 0 && r.Latency.P99 < 1e6
	if unknown > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d publications of topics not subscribed", unknown))
	}
	if e := s.pool.firstErr.Load(); e != nil {
		r.Notes = append(r.Notes, "first subscriber error: "+*e)
	}
	if busy := r.Bench.CPUSeconds / (c.Duration.Seconds() * float64(runtime.NumCPU())); busy > 0.9 {
		r.Notes = append(r.Notes, fmt.Sprintf("the bench used %.0f%% of its CPUs: the figures may show its limits rather than the server's", busy*100))
	}
	if p99 := r.PubLate.P99; p99 > 1000 {
		r.Notes = append(r.Notes, fmt.Sprintf("the publisher was behind schedule: p99 %d µs late (latency from due counts it; latency from sent does not)", p99))
	}
	if err := s.pub.refusedError(total); err != nil {
		r.Notes = append(r.Notes, err.Error())
		return r, err
	}
	return r, nil
}

func sleepUntil(ctx context.Context, t time.Time) {
	d := time.Until(t)
	if d <= 0 {
		return
	}
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
}

func runFanout(ctx context.Context, c *Config, tgt *target, emit func(Result) error) error {
	s, err := openSession(ctx, c, tgt, c.Conns, 0)
	if err != nil {
		return err
	}
	defer s.close()
	r, err := s.measure(ctx, c.Rate, nil)
	if eerr := emit(r); err == nil {
		err = eerr
	}
	return err
}

// runSaturate steps the rate up over one set of subscribers until a step
// does not keep up (or the rates run out).
func runSaturate(ctx context.Context, c *Config, tgt *target, emit func(Result) error) error {
	s, err := openSession(ctx, c, tgt, c.Conns, 0)
	if err != nil {
		return err
	}
	defer s.close()
	for i, rate := range c.Rates {
		c.logf("saturate step %d: %g/s per topic, %g deliveries/s offered", i+1, rate, rate*float64(c.Conns))
		r, err := s.measure(ctx, rate, nil)
		r.Step = i + 1
		if !r.KeepsUp {
			r.Notes = append(r.Notes, fmt.Sprintf("saturated: %g/s per topic (%g deliveries/s offered) did not keep up", rate, rate*float64(c.Conns)))
		}
		if eerr := emit(r); err == nil {
			err = eerr
		}
		if err != nil || !r.KeepsUp || ctx.Err() != nil {
			return err
		}
		sleepUntil(ctx, time.Now().Add(min(time.Second, c.Warmup))) // let queues empty
	}
	return nil
}
