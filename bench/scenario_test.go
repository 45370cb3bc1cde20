package bench

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tickfan/tickfan/server"
)

// testServer starts the real server in process on loopback ports chosen
// by the OS, open to anonymous pubs of bench.> at any command rate.
func testServer(t *testing.T, tweak func(*server.Config)) *Config {
	t.Helper()
	cfg := server.Config{
		WSAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		AnonymousPub: "bench.>",
		CmdRate:      1 << 20,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if tweak != nil {
		tweak(&cfg)
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	var log io.Writer = io.Discard
	if testing.Verbose() {
		log = os.Stderr
	}
	return &Config{
		WSURL:   "ws://" + srv.WSAddr() + "/ws",
		TCPAddr: srv.TCPAddr(),
		HTTPURL: "http://" + srv.HTTPAddr(),
		PID:     os.Getpid(),
		Label:   "test",
		Log:     log,
	}
}

// runOne runs one scenario and returns its results.
func runOne(t *testing.T, cfg Config) []Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var rs []Result
	var out bytes.Buffer
	err := Run(ctx, cfg, func(r Result) error {
		rs = append(rs, r)
		return Emit(&out, r)
	})
	if err != nil {
		t.Fatalf("%s: %v\n%s", cfg.Scenario, err, out.String())
	}
	if testing.Verbose() {
		t.Logf("%s", out.String())
	}
	if got := strings.Count(out.String(), "\n"); got != len(rs) {
		t.Fatalf("%d JSON lines for %d results", got, len(rs))
	}
	return rs
}

// checkDelivery asserts a run delivered everything exactly once, with a
// latency for each delivery and the server's CPU known.
func checkDelivery(t *testing.T, r Result) {
	t.Helper()
	if r.Expected == 0 || r.Received != r.Expected {
		t.Errorf("%s: received %d of %d expected", r.Scenario, r.Received, r.Expected)
	}
	if r.Missing != 0 || r.Dups != 0 {
		t.Errorf("%s: missing %d, dups %d", r.Scenario, r.Missing, r.Dups)
	}
	if r.Latency.Count != r.Received {
		t.Errorf("%s: %d latencies for %d received", r.Scenario, r.Latency.Count, r.Received)
	}
	if r.PubErrors != 0 || r.PubAcked != r.Published {
		t.Errorf("%s: %d pubs, %d acked, %d errors", r.Scenario, r.Published, r.PubAcked, r.PubErrors)
	}
	if r.Server.CPUSeconds == nil || r.Server.CPUUsPerDelivery == nil || r.Server.PID != os.Getpid() {
		t.Errorf("%s: server CPU figures missing: %+v", r.Scenario, r.Server)
	}
	if r.Server.RSSKiB == 0 || r.Server.PeakRSSKiB < r.Server.RSSKiB {
		t.Errorf("%s: server memory %+v", r.Scenario, r.Server)
	}
	if len(r.LatencyDist) < 2 || r.LatencyDist[len(r.LatencyDist)-1][0] != 100 {
		t.Errorf("%s: latency distribution %v", r.Scenario, r.LatencyDist)
	}
}

func TestFanout(t *testing.T) {
	for _, proto := range []Proto{ProtoWSJSON, ProtoWSMsgpack, ProtoTCP} {
		t.Run(string(proto), func(t *testing.T) {
			t.Parallel()
			cfg := *testServer(t, nil)
			cfg.Scenario = "fanout"
			cfg.Proto = proto
			cfg.Conns, cfg.Topics, cfg.Rate, cfg.Size = 20, 3, 50, 200
			cfg.Duration, cfg.Warmup, cfg.Drain = time.Second, 200*time.Millisecond, 3*time.Second
			cfg.Loops = 1
			rs := runOne(t, cfg)
			if len(rs) != 1 {
				t.Fatalf("%d results", len(rs))
			}
			r := rs[0]
			checkDelivery(t, r)
			// 3 topics at 50/s for 1 s to 20 connections: 1000 deliveries.
			if r.Expected < 900 || r.Expected > 1100 {
				t.Errorf("expected %d deliveries, want about 1000", r.Expected)
			}
			// Counts only: KeepsUp also asks for a p99 under a second,
			// which is a speed figure for the reports, not a test's.
			if r.Resets != 0 || r.Lags != 0 || r.DeliveriesPerS <= 0 {
				t.Errorf("%d resets, %d lags, %v deliveries/s", r.Resets, r.Lags, r.DeliveriesPerS)
			}
			if r.Params.Conns != 20 || r.Params.Proto != proto || r.Label != "test" {
				t.Errorf("params %+v label %q", r.Params, r.Label)
			}
		})
	}
}

func TestSlow(t *testing.T) {
	cfg := *testServer(t, func(c *server.Config) { c.OutboxBytes = 64 << 10 })
	cfg.Scenario = "slow"
	// The stalled connection must fill the server's socket buffer (up to
	// 4 MiB) and its 64 KiB outbox within the window: 4 MB/s for 1.5 s.
	cfg.Conns, cfg.Topics, cfg.Rate, cfg.Size, cfg.SlowFrac = 10, 1, 1000, 4096, 0.1
	cfg.Duration, cfg.Warmup, cfg.Drain = 1500*time.Millisecond, 300*time.Millisecond, 3*time.Second
	r := runOne(t, cfg)[0]
	checkDelivery(t, r)
	if r.Slow == nil || r.Slow.SlowConns != 1 || r.Slow.HealthyConns != 9 {
		t.Fatalf("slow figures %+v", r.Slow)
	}
	if r.Slow.ConnsLagged != 1 || r.Slow.LagsSeen < 1 {
		t.Errorf("lag seen by %d of 1 slow connections (%d lags); server %v", r.Slow.ConnsLagged, r.Slow.LagsSeen, r.Server.Metrics)
	}
	if r.Lags != 0 || r.Slow.HealthyLags != 0 {
		t.Errorf("healthy connections lagged %d times", r.Lags)
	}
}

func TestHerd(t *testing.T) {
	cfg := *testServer(t, nil)
	cfg.Scenario = "herd"
	cfg.Conns, cfg.Topics, cfg.Rate = 50, 5, 40
	cfg.Duration, cfg.Warmup, cfg.HerdGap, cfg.Drain = time.Second, 200*time.Millisecond, 300*time.Millisecond, 3*time.Second
	r := runOne(t, cfg)[0]
	checkDelivery(t, r)
	h := r.Herd
	if h == nil || h.Conns != 50 {
		t.Fatalf("herd figures %+v", h)
	}
	// Every subscriber held its place in a history of 1000: all recover.
	if h.Recovered != 50 || h.NotRec != 0 || r.Resets != 0 {
		t.Errorf("%d recovered, %d not, %d resets; want all 50 recovered", h.Recovered, h.NotRec, r.Resets)
	}
	if h.ResubscribeS <= 0 || h.ResubscribeS < h.DialS || h.PubsWhileAway <= 0 {
		t.Errorf("resubscribe %.3fs, dials %.3fs, %d pubs while away", h.ResubscribeS, h.DialS, h.PubsWhileAway)
	}
	// The recovered publications waited at least the gap.
	if r.Latency.Max < 300_000 {
		t.Errorf("max latency %d µs, below the %v gap", r.Latency.Max, cfg.HerdGap)
	}
}

func TestHerdBeyondHistory(t *testing.T) {
	// A history of 5 cannot cover the gap: every subscriber is told reset,
	// and what the reset skipped is not counted as missing.
	cfg := *testServer(t, func(c *server.Config) { c.HistorySize = 5 })
	cfg.Scenario = "herd"
	cfg.Conns, cfg.Topics, cfg.Rate = 10, 2, 50
	cfg.Duration, cfg.Warmup, cfg.HerdGap, cfg.Drain = time.Second, 200*time.Millisecond, 300*time.Millisecond, 3*time.Second
	r := runOne(t, cfg)[0]
	if r.Herd.NotRec != 10 || r.Herd.Recovered != 0 || r.Resets != 10 || r.ResetSkipped == 0 {
		t.Errorf("rec %d, not %d, resets %d, skipped %d; want 10 resets", r.Herd.Recovered, r.Herd.NotRec, r.Resets, r.ResetSkipped)
	}
	if r.Missing != 0 || r.Dups != 0 {
		t.Errorf("missing %d, dups %d", r.Missing, r.Dups)
	}
	if r.KeepsUp {
		t.Errorf("a run with publications lost to resets keeps up")
	}
}

func TestIdle(t *testing.T) {
	cfg := *testServer(t, nil)
	cfg.Scenario = "idle"
	cfg.Conns, cfg.Settle = 200, 200*time.Millisecond
	r := runOne(t, cfg)[0]
	f := r.Idle
	if f == nil || f.Conns != 200 || !f.Subscribed || f.OpenS <= 0 {
		t.Fatalf("idle figures %+v", f)
	}
	if f.ServerRSSBeforeKiB == 0 || f.ServerRSSAfterKiB == 0 || f.ServerCPUSettleS == nil {
		t.Errorf("server memory or CPU missing: %+v", f)
	}
	if r.Bench.Goroutines > 100 {
		t.Errorf("%d goroutines for 200 connections: the pool must not take one per connection", r.Bench.Goroutines)
	}
}

// hft runs 1 and 10 subscribers by default, one result each, and every
// result carries both latencies, the publisher's lateness and the
// baselines measured before and after the cases, the echo one included.
func TestHFT(t *testing.T) {
	cfg := *testServer(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	echoDone := make(chan error, 1)
	go func() { echoDone <- ServeEcho(ctx, ln) }()
	t.Cleanup(func() {
		stop()
		if err := <-echoDone; err != nil {
			t.Errorf("echo server: %v", err)
		}
	})
	cfg.Scenario = "hft"
	cfg.Echo = ln.Addr().String()
	cfg.Rate = 2000
	cfg.Duration, cfg.Warmup = 600*time.Millisecond, 200*time.Millisecond
	rs := runOne(t, cfg)
	if len(rs) != 2 || rs[0].Params.Conns != 1 || rs[1].Params.Conns != 10 {
		t.Fatalf("%d results, want one with 1 subscriber and one with 10", len(rs))
	}
	for _, r := range rs {
		checkDelivery(t, r)
		if r.Params.Proto != ProtoTCP || r.Params.Topics != 1 || r.Params.Size != 64 {
			t.Errorf("hft params %+v", r.Params)
		}
		// Every delivery has a latency from its write, which came after
		// its due time: never more than the latency from due.
		if s, d := r.LatencySent, r.Latency; s.Count != r.Received || s.P50 > d.P50 || s.P99 > d.P99 || s.Max > d.Max {
			t.Errorf("%d subscribers: latency from sent %+v, from due %+v, %d received", r.Params.Conns, s, d, r.Received)
		}
		if r.PubsInWindow < 1000 || r.PubLate == nil || r.PubLate.Count != r.PubsInWindow || r.Expected != r.PubsInWindow*int64(r.Params.Conns) {
			t.Errorf("%d subscribers: %d publications in the window, lateness %+v, %d expected", r.Params.Conns, r.PubsInWindow, r.PubLate, r.Expected)
		}
		if r.Server.CPUUsPerPublication == nil {
			t.Errorf("%d subscribers: no server CPU per publication", r.Params.Conns)
		}
		h := r.HFT
		if h == nil || h.After == nil {
			t.Fatalf("hft figures %+v", h)
		}
		for i, b := range []Baselines{h.Baselines, *h.After} {
			if b.LoopbackRTT.Count == 0 || b.LoopbackRTT.P50 <= 0 || b.ServerPingRTT.Count == 0 || b.EchoRTT == nil || b.EchoRTT.Count == 0 {
				t.Errorf("baselines %d: %+v", i, b)
			}
		}
		if h.Baselines != rs[0].HFT.Baselines || *h.After != *rs[0].HFT.After {
			t.Errorf("the cases of one run carry different baselines")
		}
		if h.TargetP50Us != 30 || h.TargetP99Us != 100 {
			t.Errorf("targets %+v", h)
		}
	}
}

// --conns given keeps hft to that one case; an hft run without --echo
// has no echo baseline.
func TestHFTConnsGiven(t *testing.T) {
	if got := (Config{}).Defaults("hft").HFTConns; !slices.Equal(got, []int{1, 10}) {
		t.Errorf("default cases %v", got)
	}
	if got := (Config{Conns: 3}).Defaults("hft").HFTConns; !slices.Equal(got, []int{3}) {
		t.Errorf("cases with --conns 3: %v", got)
	}
	cfg := *testServer(t, nil)
	cfg.Scenario = "hft"
	cfg.Conns, cfg.Rate = 3, 1000
	cfg.Duration, cfg.Warmup = 300*time.Millisecond, 100*time.Millisecond
	rs := runOne(t, cfg)
	if len(rs) != 1 || rs[0].Params.Conns != 3 {
		t.Fatalf("%d results, want one of 3 subscribers", len(rs))
	}
	if rs[0].HFT.EchoRTT != nil || rs[0].HFT.After == nil || rs[0].HFT.After.EchoRTT != nil {
		t.Errorf("baselines without --echo: %+v", rs[0].HFT)
	}
}

func TestServeEcho(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeEcho(ctx, ln) }()
	h, err := echoRTT(context.Background(), ln.Addr().String(), 100)
	if err != nil || h.TotalCount() != 100 {
		t.Fatalf("echo round trips: %v", err)
	}
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stop() // closes the listener and the open connection
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("ServeEcho: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ServeEcho did not return after its context ended")
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Errorf("a connection stayed open after the echo server stopped")
	}
}

func TestSaturateStopsAtFirstMiss(t *testing.T) {
	cfg := *testServer(t, nil)
	cfg.Scenario = "saturate"
	cfg.Conns, cfg.Topics = 10, 2
	cfg.Duration, cfg.Warmup, cfg.Drain = 500*time.Millisecond, 100*time.Millisecond, 2*time.Second
	cfg.Rates = []float64{20, 40}
	rs := runOne(t, cfg)
	// Both steps deliver everything; whether a step also kept its p99
	// under a second is speed, which only decides where the run stops:
	// it goes on after a step that kept up and stops after one that did not.
	if len(rs) == 0 || len(rs) > 2 {
		t.Fatalf("%d steps, want 1 or 2", len(rs))
	}
	for i, r := range rs {
		checkDelivery(t, r)
		if r.Step != i+1 || r.Params.Rate != cfg.Rates[i] {
			t.Errorf("step %d: step %d rate %v", i+1, r.Step, r.Params.Rate)
		}
		if r.Resets != 0 || r.Lags != 0 {
			t.Errorf("step %d: %d resets, %d lags", i+1, r.Resets, r.Lags)
		}
		if last := i == len(rs)-1; !last && !r.KeepsUp || last && len(rs) < len(cfg.Rates) && r.KeepsUp {
			t.Errorf("step %d of %d keeps up %v: the run goes on after a step that keeps up and stops after one that does not",
				i+1, len(rs), r.KeepsUp)
		}
	}
}

func TestRunErrors(t *testing.T) {
	ctx := context.Background()
	nop := func(Result) error { return nil }
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"unknown scenario", Config{Scenario: "nope"}, "unknown scenario"},
		{"server down", Config{Scenario: "fanout", WSURL: "ws://127.0.0.1:1/ws", TCPAddr: "127.0.0.1:1", HTTPURL: "-", Conns: 1}, "server not reachable"},
		{"no such pid", Config{Scenario: "fanout", PID: 1 << 30}, "no such process"},
		{"too many conns", Config{Scenario: "idle", Conns: 1 << 30, PID: os.Getpid()}, "open-file limit"},
		{"bad proto", Config{Scenario: "fanout", Proto: "udp"}, "unknown proto"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Run(ctx, c.cfg, nop)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one saying %q", err, c.want)
			}
		})
	}
}

func TestRefusedPubsFail(t *testing.T) {
	// A server that does not let anonymous clients publish: the run fails
	// and says what to change.
	cfg := *testServer(t, func(c *server.Config) { c.AnonymousPub = "" })
	cfg.Scenario = "fanout"
	cfg.Conns, cfg.Topics, cfg.Rate = 2, 1, 20
	cfg.Duration, cfg.Warmup, cfg.Drain = 200*time.Millisecond, 100*time.Millisecond, 200*time.Millisecond
	err := Run(context.Background(), cfg, func(Result) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "anonymous-pub") {
		t.Errorf("error %v, want one naming --anonymous-pub", err)
	}
	cfg2 := *testServer(t, func(c *server.Config) { c.CmdRate = 10 })
	cfg2.Scenario, cfg2.Conns, cfg2.Topics, cfg2.Rate = "fanout", 2, 1, 100
	cfg2.Duration, cfg2.Warmup, cfg2.Drain = 300*time.Millisecond, 100*time.Millisecond, 200*time.Millisecond
	err = Run(context.Background(), cfg2, func(Result) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "--cmd-rate") {
		t.Errorf("error %v, want one naming --cmd-rate", err)
	}
}
