package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/gorilla/websocket"

	"github.com/tickfan/tickfan/server"
	"github.com/tickfan/tickfan/topic"
)

// BenchmarkStalledClients measures the publish-to-receive latency of
// healthy WebSocket subscribers of one topic while 0% and 10% more
// subscribers of the same topic have stopped reading, in one run. Each
// iteration is one publication at a fixed rate (open loop, so a slow
// server cannot slow the publisher down and hide its latency). Run with a
// fixed count, e.g. -benchtime=3000x.
//
// Stalled clients shrink their socket receive buffer so that the server's
// queue for them fills within the run, as a phone on a bad network would.
func BenchmarkStalledClients(b *testing.B) {
	const healthy = 20
	for _, stalledPct := range []int{0, 10} {
		b.Run(fmt.Sprintf("stalled=%d%%", stalledPct), func(b *testing.B) {
			runStalled(b, healthy, healthy*stalledPct/100, 2000)
		})
	}
}

type pubStamp struct {
	TS  int64  `json:"ts"`
	Pad string `json:"pad"`
}

func runStalled(b *testing.B, healthy, stalled, rate int) {
	srv, err := server.New(server.Config{
		WSAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	url := "ws://" + srv.WSAddr() + "/ws"
	const name = "book.BENCH"

	hist := hdrhistogram.New(1, int64(10*time.Second/time.Microsecond), 3)
	var mu sync.Mutex
	var wg sync.WaitGroup
	var conns []*websocket.Conn
	stallDialer := websocket.Dialer{NetDial: func(network, addr string) (net.Conn, error) {
		c, err := net.Dial(network, addr)
		if err == nil {
			_ = c.(*net.TCPConn).SetReadBuffer(4096)
		}
		return c, err
	}}
	dial := func(d *websocket.Dialer) *websocket.Conn {
		ws, _, err := d.Dial(url, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := ws.WriteJSON(map[string]any{"op": "sub", "id": 1, "topics": []string{name}}); err != nil {
			b.Fatal(err)
		}
		conns = append(conns, ws)
		return ws
	}
	for i := 0; i < stalled; i++ {
		dial(&stallDialer) // subscribes, then never reads again
	}
	want := b.N
	for i := 0; i < healthy; i++ {
		ws := dial(websocket.DefaultDialer)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last uint64
			for got := 0; got < want; {
				_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, msg, err := ws.ReadMessage()
				if err != nil {
					b.Errorf("healthy client: %v after %d publications", err, got)
					return
				}
				if !bytes.HasPrefix(msg, []byte(`{"t":"`+name+`"`)) {
					continue // the sub reply
				}
				seq, ts := field(msg, `"s":`), field(msg, `"ts":`)
				if seq != last+1 {
					b.Errorf("healthy client: seq %d after %d", seq, last)
					return
				}
				last = seq
				lat := time.Since(time.Unix(0, int64(ts)))
				mu.Lock()
				_ = hist.RecordValue(max(lat.Microseconds(), 1))
				mu.Unlock()
				got++
			}
		}()
	}
	defer func() {
		for _, ws := range conns {
			ws.Close()
		}
	}()
	time.Sleep(100 * time.Millisecond) // every sub reaches the server

	pad := strings.Repeat("x", 2000)
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// open loop: publication i goes out at start + i*interval
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		data, _ := json.Marshal(pubStamp{TS: time.Now().UnixNano(), Pad: pad})
		if _, err := srv.Publish(context.Background(), []topic.PublishRequest{{Topic: name, Data: data}}); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(hist.ValueAtQuantile(50)), "p50-µs")
	b.ReportMetric(float64(hist.ValueAtQuantile(99)), "p99-µs")
	b.ReportMetric(float64(hist.ValueAtQuantile(99.9)), "p99.9-µs")
	b.ReportMetric(float64(hist.TotalCount())/float64(healthy), "received/client")
}

// field reads the unsigned integer after key in msg (0 if absent): the
// healthy clients read seq and timestamp without decoding the whole JSON,
// so the client side stays light next to the server.
func field(msg []byte, key string) uint64 {
	i := bytes.Index(msg, []byte(key))
	if i < 0 {
		return 0
	}
	var v uint64
	for _, c := range msg[i+len(key):] {
		if c < '0' || c > '9' {
			break
		}
		v = v*10 + uint64(c-'0')
	}
	return v
}
