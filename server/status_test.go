package server

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestDialAddr(t *testing.T) {
	for _, tc := range []struct{ bound, host, want string }{
		{"[::]:8080", "example.com:8082", "example.com:8080"},
		{"[::]:8080", "example.com", "example.com:8080"},
		{"0.0.0.0:8081", "10.1.2.3:8082", "10.1.2.3:8081"},
		{":8080", "md.example.com:443", "md.example.com:8080"},
		{"[::]:8080", "[::1]:8082", "[::1]:8080"},
		{"[::]:8080", "[2001:db8::7]", "[2001:db8::7]:8080"},
		{"[::]:8080", "", "localhost:8080"},
		{"127.0.0.1:8080", "example.com:8082", "127.0.0.1:8080"},
		{"192.0.2.10:9000", "example.com", "192.0.2.10:9000"},
		{"[::1]:8080", "example.com", "[::1]:8080"},
	} {
		if got := dialAddr(tc.bound, tc.host); got != tc.want {
			t.Errorf("dialAddr(%q, %q) = %q, want %q", tc.bound, tc.host, got, tc.want)
		}
	}
}

// TestStatusStreamOutlivesWriteTimeout: a status stream lasts past the
// HTTP server's WriteTimeout, each event setting its own write deadline.
func TestStatusStreamOutlivesWriteTimeout(t *testing.T) {
	srv := startLoopback(t)
	hs := httptest.NewUnstartedServer(http.HandlerFunc(srv.handleStatusStream))
	hs.Config.WriteTimeout, hs.Config.ReadTimeout = 700*time.Millisecond, 700*time.Millisecond
	hs.Start()
	defer hs.Close()
	resp, err := http.Get(hs.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	began, events := time.Now(), 0
	for time.Since(began) < 2500*time.Millisecond {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended after %s and %d events (WriteTimeout 700ms): %v", time.Since(began), events, err)
		}
		if strings.HasPrefix(line, "event: status") {
			events++
		}
	}
	if events < 3 {
		t.Fatalf("%d status events in 2.5 s, want one a second", events)
	}
}

// TestStatusScansOnlyWhenWatched: the topics are scanned only while a
// page streams or lately asked; the counters are sampled regardless.
func TestStatusScansOnlyWhenWatched(t *testing.T) {
	srv := startLoopback(t)
	if _, err := srv.engine.Publish("book.x", []byte(`1`), false, true); err != nil {
		t.Fatal(err)
	}
	ss := srv.status
	f := ss.current()
	for range 2 { // two samples, nobody watching
		<-f.next
		f = f.succ
	}
	var st statusSnapshot
	if err := json.Unmarshal(f.snap, &st); err != nil {
		t.Fatal(err)
	}
	if st.Topics != 1 || st.TopicsL.Sampling || st.TopicsL.Scanned != 0 || len(st.TopicsL.Top) != 0 {
		t.Fatalf("unwatched: topics %d, list %+v; want the count and no scan", st.Topics, st.TopicsL)
	}
	ss.streams.Add(1) // a page streams
	defer ss.streams.Add(-1)
	for range 2 {
		<-f.next
		f = f.succ
	}
	if err := json.Unmarshal(f.snap, &st); err != nil {
		t.Fatal(err)
	}
	if !st.TopicsL.Sampling || st.TopicsL.Scanned != 1 || len(st.TopicsL.Top) != 1 || st.TopicsL.Top[0].Name != "book.x" {
		t.Fatalf("watched: list %+v; want book.x scanned", st.TopicsL)
	}
}

// startLoopback starts a server of one loop on loopback ports the OS
// picks, shut down when the test ends.
func startLoopback(t *testing.T) *Server {
	t.Helper()
	srv, err := New(Config{WSAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", Loops: 1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return srv
}
