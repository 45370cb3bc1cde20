package bench

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tickfan/tickfan/server"
)

// runVersusOne runs one fanout on the HTTP path and returns its run.
func runVersusOne(t *testing.T, cfg Config) Versus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var vs []Versus
	cfg.EmitVersus = func(v Versus) error {
		vs = append(vs, v)
		return nil
	}
	err := Run(ctx, cfg, func(r Result) error {
		t.Errorf("a run of the HTTP path went to emit: %+v", r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 1 {
		t.Fatalf("%d runs", len(vs))
	}
	return vs[0]
}

// checkVersus asserts a run of the HTTP path delivered everything once,
// with both latencies for each delivery.
func checkVersusRun(t *testing.T, v Versus) {
	t.Helper()
	checkDelivery(t, v.Result)
	if v.LatencySent.Count != v.Received {
		t.Errorf("%d latencies from sent for %d received", v.LatencySent.Count, v.Received)
	}
	// Sent is stamped at or after due: from sent is never the longer.
	if v.LatencySent.Max > v.Latency.Max || v.LatencySent.P50 > v.Latency.P50 {
		t.Errorf("latency from sent %+v above from due %+v", v.LatencySent, v.Latency)
	}
	if len(v.LatencySentDist) < 2 || v.PubLate == nil || v.PubLate.Count != v.Published {
		t.Errorf("sent distribution %v, publisher lateness %+v for %d published", v.LatencySentDist, v.PubLate, v.Published)
	}
	if v.ServerCores == nil || *v.ServerCores <= 0 || v.BenchCores <= 0 || v.DeliveriesPerS <= 0 {
		t.Errorf("server cores %v, bench cores %v, %v deliveries/s", v.ServerCores, v.BenchCores, v.DeliveriesPerS)
	}
}

func TestHTTPPublisherTickfan(t *testing.T) {
	cfg := *testServer(t, func(c *server.Config) { c.APIKey = "bench-key" })
	cfg.Scenario = "fanout"
	cfg.PubHTTP, cfg.APIKey, cfg.PubInflight = true, "bench-key", 8
	cfg.Conns, cfg.Topics, cfg.Rate, cfg.Size = 20, 3, 50, 200
	cfg.Duration, cfg.Warmup, cfg.Drain = time.Second, 200*time.Millisecond, 3*time.Second
	v := runVersusOne(t, cfg)
	checkVersusRun(t, v)
	if v.Target != TargetTickfan || v.Publish != "http" || v.Params.PubConns != 8 {
		t.Errorf("target %q, publish %q, params %+v", v.Target, v.Publish, v.Params)
	}
	// 3 topics at 50/s for 1 s to 20 connections: 1000 deliveries.
	if v.Expected < 900 || v.Expected > 1100 {
		t.Errorf("expected %d deliveries, want about 1000", v.Expected)
	}
}

func TestHTTPPublisherWrongKey(t *testing.T) {
	cfg := *testServer(t, func(c *server.Config) { c.APIKey = "bench-key" })
	cfg.Scenario = "fanout"
	cfg.PubHTTP, cfg.APIKey = true, "wrong"
	cfg.Conns, cfg.Topics, cfg.Rate = 2, 1, 20
	cfg.Duration, cfg.Warmup, cfg.Drain = 200*time.Millisecond, 50*time.Millisecond, time.Second
	err := Run(context.Background(), cfg, func(Result) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "--api-key") || !strings.Contains(err.Error(), "401") {
		t.Fatalf("err %v, want the 401 explained", err)
	}
}

func TestVersusChecks(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no key", Config{Scenario: "fanout", PubHTTP: true}, "--api-key"},
		{"no centrifugo key", Config{Scenario: "fanout", Target: TargetCentrifugo}, "--centrifugo-api-key"},
		{"not fanout", Config{Scenario: "herd", PubHTTP: true, APIKey: "k"}, "fanout scenario only"},
		{"msgpack", Config{Scenario: "fanout", PubHTTP: true, APIKey: "k", Proto: ProtoWSMsgpack}, "JSON subscribers only"},
		{"unknown target", Config{Scenario: "fanout", Target: "nats"}, "want tickfan or centrifugo"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.cfg.Defaults(tc.cfg.Scenario)
			err := c.checkVersus()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

func TestPayloadJSON(t *testing.T) {
	for _, size := range []int{11, 60, 200, 2048} {
		b := appendPayloadJSON(nil, size, 12345678901, 12345678999)
		if size >= 40 && len(b) != size {
			t.Errorf("size %d: %d bytes %q", size, len(b), b)
		}
		due, sent, ok := payloadDueSent(b)
		if !ok || due != 12345678901 || sent != 12345678999 {
			t.Errorf("size %d: %q read as %d %d %v", size, b, due, sent, ok)
		}
	}
	for _, bad := range []string{`{"a":1}`, `[1]`, `["x",2]`, `[1,"x"]`, ``} {
		if _, _, ok := payloadDueSent([]byte(bad)); ok {
			t.Errorf("%q read as a payload", bad)
		}
	}
	if s, ok := answerSeq([]byte(`{"e":"px7","s":42}`), "s"); !ok || s != 42 {
		t.Errorf("tickfan answer: %d %v", s, ok)
	}
	if s, ok := answerSeq([]byte(`{"result":{"offset":7,"epoch":"cLKq"}}`), "offset"); !ok || s != 7 {
		t.Errorf("centrifugo answer: %d %v", s, ok)
	}
	if _, ok := answerSeq([]byte(`{"result":{}}`), "offset"); ok {
		t.Errorf("an answer without offset gave one")
	}
}
