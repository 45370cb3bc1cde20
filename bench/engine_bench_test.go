package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/tickfan/tickfan/server"
	"github.com/tickfan/tickfan/topic"
)

// BenchmarkEngineFanout is the wall-clock cost of one delivery through
// each engine, in one run: a publication handed to the server in process
// reaches 100 subscribers over loopback TCP (msgpack frames), each read by
// a goroutine that counts them. Server, kernel and clients share the
// machine, so the figure compares engines; the server's own CPU per
// delivery comes from `tickfan bench` (scripts/bench-engines).
//
//	go test -run '^$' -bench EngineFanout -benchtime 20000x -count 5 ./bench/
func BenchmarkEngineFanout(b *testing.B) {
	const subs = 100
	for _, engine := range server.Engines {
		b.Run(engine, func(b *testing.B) {
			srv, err := server.New(server.Config{
				Engine: engine, WSAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			})
			if err != nil {
				b.Fatal(err)
			}
			if err := srv.Start(); err != nil {
				b.Fatal(err)
			}
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = srv.Shutdown(ctx)
			}()
			var wg sync.WaitGroup
			counts := make([]chan int, subs)
			for i := range subs {
				nc := subscribeTCP(b, srv.TCPAddr(), "bench.fanout")
				defer nc.Close()
				counts[i] = make(chan int, 1)
				wg.Add(1)
				go func(ch chan<- int) {
					defer wg.Done()
					ch <- countPublications(nc, b.N)
				}(counts[i])
			}
			data := []byte(`{"px":65000.5,"qty":1.25,"side":"buy","ts":1767225600123}`)
			req := []topic.PublishRequest{{Topic: "bench.fanout", Data: data}}
			ctx := context.Background()
			b.ResetTimer()
			for range b.N {
				if _, err := srv.Publish(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
			wg.Wait()
			b.StopTimer()
			for i := range counts {
				if got := <-counts[i]; got != b.N {
					b.Fatalf("subscriber %d got %d of %d publications", i, got, b.N)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*subs), "ns/delivery")
		})
	}
}

// subscribeTCP opens a TCP msgpack connection subscribed to name and
// returns it once the sub is answered.
func subscribeTCP(b *testing.B, addr, name string) net.Conn {
	b.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	body, err := msgpack.Marshal(map[string]any{"op": "sub", "id": 1, "topics": []string{name}})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := nc.Write(binary.BigEndian.AppendUint32(nil, uint32(len(body)))); err != nil {
		b.Fatal(err)
	}
	if _, err := nc.Write(body); err != nil {
		b.Fatal(err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var hdr [4]byte
	if _, err := io.ReadFull(nc, hdr[:]); err != nil {
		b.Fatalf("sub reply: %v", err)
	}
	reply := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(nc, reply); err != nil {
		b.Fatalf("sub reply: %v", err)
	}
	var m map[string]any
	if err := msgpack.Unmarshal(reply, &m); err != nil || m["res"] == nil {
		b.Fatal(fmt.Sprintf("sub reply %v %v", m, err))
	}
	_ = nc.SetReadDeadline(time.Time{})
	return nc
}

// countPublications reads frames until it has n or the connection ends.
// Every frame after the sub reply is a publication: the server pings only
// after its heartbeat interval, longer than a run.
func countPublications(nc net.Conn, n int) int {
	r := bufio.NewReaderSize(nc, 64<<10)
	var hdr [4]byte
	got := 0
	for got < n {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return got
		}
		if _, err := r.Discard(int(binary.BigEndian.Uint32(hdr[:]))); err != nil {
			return got
		}
		got++
	}
	return got
}
