package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/tickfan/tickfan/server"
)

// startServer starts the real server in process on loopback ports chosen
// by the OS, open to anonymous pubs of the captured topics.
func startServer(t *testing.T) Config {
	t.Helper()
	srv, err := server.New(server.Config{
		WSAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		AnonymousPub: "trade.>,book.>,news.>",
		APIKey:       "secret",
		CmdRate:      1 << 20,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
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
	return Config{
		WSURL: "ws://" + srv.WSAddr() + "/ws", TCPAddr: srv.TCPAddr(), HTTPURL: "http://" + srv.HTTPAddr(),
		APIKey: "secret",
	}
}

// The committed capture's 13 publications: trade.XYZ 8 (5 TCP, 2 HTTP,
// 1 Redis), book.XYZ 2, news.XYZ 3; its two subscribers hold trade.XYZ
// and book.XYZ, and trade.XYZ and news.XYZ. So each copy of the pair of
// subscribers gets 8*2 + 2 + 3 = 21 publications.
func TestReplayCapture(t *testing.T) {
	c := readTestCapture(t)
	cases := []struct {
		name        string
		amplify     int
		amplifyPubs bool
		pubHTTP     bool
		speed       float64
	}{
		{"captured pace", 1, false, false, 4},
		{"amplify 10", 10, false, false, 0},
		{"amplify 10 with publishers, over HTTP", 10, true, true, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := startServer(t)
			cfg.Amplify, cfg.AmplifyPubs, cfg.PubHTTP, cfg.Speed = tc.amplify, tc.amplifyPubs, tc.pubHTTP, tc.speed
			cfg.Duration = 30 * time.Second
			rep, err := Run(context.Background(), cfg, c)
			if err != nil {
				t.Fatal(err)
			}
			var text bytes.Buffer
			_ = rep.WriteText(&text)
			t.Logf("\n%s", text.String())
			pubCopies := 1
			if tc.amplifyPubs {
				pubCopies = tc.amplify
			}
			pubs := 13 * pubCopies
			want := map[string][2]int{
				"subscriber conns": {rep.SubscriberConns, 2 * tc.amplify},
				"subs sent":        {rep.SubsSent, 2 * tc.amplify},
				"subs acked":       {rep.SubsAcknowledged, 2 * tc.amplify},
				"pubs sent":        {rep.PubsSent, pubs},
				"acknowledged":     {rep.Acknowledged, pubs},
				"expected":         {rep.Expected, 21 * tc.amplify * pubCopies},
				"delivered":        {rep.Delivered, 21 * tc.amplify * pubCopies},
				"matched":          {rep.Matched, 21 * tc.amplify * pubCopies},
				"catch-up":         {rep.CatchUp, 0},
				"errors":           {rep.ErrorCount, 0},
				"found tcp pub":    {rep.Found[FoundTCPPub], 5},
				"found ws sub":     {rep.Found[FoundWSSub], 2},
				"found http items": {rep.Found[FoundHTTPItems], 5},
				"found redis":      {rep.Found[FoundRedisPublish], 3},
				"unparsed":         {rep.Unparsed, 0},
			}
			for k, v := range want {
				if v[0] != v[1] {
					t.Errorf("%s: %d, want %d", k, v[0], v[1])
				}
			}
			if rep.Latency.P50 <= 0 || rep.Latency.Max < rep.Latency.P50 {
				t.Errorf("latency %+v", rep.Latency)
			}
			if _, err := json.Marshal(rep); err != nil {
				t.Error(err)
			}
		})
	}
}

// A run capped by Duration stops sending and says how much it left.
func TestReplayDuration(t *testing.T) {
	c := readTestCapture(t)
	cfg := startServer(t)
	cfg.Speed = 1 // the capture spans over 2 s
	cfg.Duration = 300 * time.Millisecond
	cfg.Drain = 100 * time.Millisecond
	start := time.Now()
	rep, err := Run(context.Background(), cfg, c)
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("took %v", el)
	}
	if rep.NotReplayed == 0 || rep.PubsSent >= 13 {
		t.Errorf("not replayed %d, pubs sent %d", rep.NotReplayed, rep.PubsSent)
	}
}

// Nothing listening: Run fails at once instead of reporting zeros.
func TestReplayNoServer(t *testing.T) {
	c := readTestCapture(t)
	cfg := Config{WSURL: "ws://127.0.0.1:1/ws", TCPAddr: "127.0.0.1:1", HTTPURL: "http://127.0.0.1:1", ReplyTimeout: time.Second}
	if _, err := Run(context.Background(), cfg, c); err == nil {
		t.Fatal("no error without a server")
	}
}
