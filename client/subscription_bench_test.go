package client

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/tickfan/tickfan/internal/servertest"
	"github.com/tickfan/tickfan/server"
)

// BenchmarkDeliver measures what a publication costs the subscriber,
// from the socket to the caller, on loopback: through a Subscription
// (decode, continuity check, the queue to Next) and through a bare Conn
// (decode only). A producer publishes over HTTP in batches of 1000 while
// the subscriber reads; the outbox is large enough that the server never
// makes it lag, and the last seq ends the count (so a reset, were the
// server to fall behind its history, would not hang it).
func BenchmarkDeliver(b *testing.B) {
	for _, p := range []Proto{TCP, WSJSON} {
		b.Run("Subscription/"+string(p), func(b *testing.B) {
			n := benchNode(b)
			s, err := Subscribe(Config{Proto: p, Addr: benchAddr(n, p)}, []string{"bench.a"})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			for {
				ev, err := s.Next(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if _, ok := ev.(Subscribed); ok {
					break
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			go benchPublish(b, n, b.N)
			for {
				ev, err := s.Next(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if p, ok := ev.(Pub); ok && p.Seq >= uint64(b.N) {
					break
				}
			}
			b.StopTimer()
			if st := s.Stats(); st.Resets+st.Lags > 0 {
				b.Logf("the server could not keep up: %+v", st)
			}
		})
		b.Run("Conn/"+string(p), func(b *testing.B) {
			n := benchNode(b)
			c, err := Dial(context.Background(), Config{Proto: p, Addr: benchAddr(n, p)})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			if err := c.Subscribe(1, []string{"bench.a"}, nil); err != nil {
				b.Fatal(err)
			}
			if m, err := c.Next(); err != nil || m.Kind != KindReply {
				b.Fatalf("sub: %+v %v", m, err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			go benchPublish(b, n, b.N)
			for {
				m, err := c.Next()
				if err != nil {
					b.Fatal(err)
				}
				if m.Kind == KindPublication && m.Seq >= uint64(b.N) {
					break
				}
				if m.Kind == KindLag || m.Kind == KindReset {
					b.Logf("the server could not keep up: %+v", m)
				}
			}
		})
	}
}

func benchNode(b *testing.B) *servertest.Node {
	return servertest.Start(b, server.Config{
		APIKey: "k", HistorySize: 100_000, OutboxMsgs: 1 << 20, OutboxBytes: 1 << 30, MaxBatch: 1000,
	})
}

func benchAddr(n *servertest.Node, p Proto) string {
	if p.WebSocket() {
		return n.WSURL()
	}
	return n.Srv.TCPAddr()
}

// benchPublish publishes count small publications of bench.a over HTTP.
func benchPublish(b *testing.B, n *servertest.Node, count int) {
	item := `{"t":"bench.a","d":{"p":100.25,"q":3}}`
	for count > 0 {
		k := min(count, 1000)
		body := `{"batch":[` + strings.Repeat(item+",", k-1) + item + `]}`
		req, _ := http.NewRequest(http.MethodPost, n.HTTPURL()+"/api/publish", bytes.NewReader([]byte(body)))
		req.Header.Set("Authorization", "apikey k")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Error(err)
			return
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Error(fmt.Sprintf("publish: %s", resp.Status))
			return
		}
		count -= k
	}
}
