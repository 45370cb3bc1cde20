package bench

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
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
			cfg := *testServer(t, nil)
			cfg.Scenario = "fanout"
			cfg.Proto = proto
			cfg.Conns, cfg.Topics, cfg.Rate, cfg.Size = 20, 3, 50, 200
			cfg.Duration, cfg.Warmup, cfg.Drain = time.Second, 200*time.Millisecond, 3*time.Second
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
			if !r.KeepsUp || r.DeliveriesPerS <= 0 {
				t.Errorf("keeps up %v at %v deliveries/s", r.KeepsUp, r.DeliveriesPerS)
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
	cfg.Conns, cfg.Topics, cfg.Rate, cfg.Size, cfg.SlowFrac = 20, 2, 500, 4096, 0.1
	cfg.Duration, cfg.Warmup, cfg.Drain = 1500*time.Millisecond, 300*time.Millisecond, 3*time.Second
	r := runOne(t, cfg)[0]
	checkDelivery(t, r)
	if r.Slow == nil || r.Slow.SlowConns != 2 || r.Slow.HealthyConns != 18 {
		t.Fatalf("slow figures %+v", r.Slow)
	}
	if r.Slow.ConnsLagged != 2 || r.Slow.LagsSeen < 2 {
		t.Errorf("lag seen by %d of 2 slow connections (%d lags); server %v", r.Slow.ConnsLagged, r.Slow.LagsSeen, r.Server.Metrics)
	}
	if r.Lags != 0 || r.Slow.HealthyLags != 0 {
		t.Errorf("healthy connections lagged %d times", r.Lags)
	}
}
