package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// fakeReactor is an engine that serves nothing and reports err as the
// reason it does not serve.
type fakeReactor struct {
	mu  sync.Mutex
	err error
}

func (r *fakeReactor) Start(*sync.WaitGroup) error { return nil }
func (r *fakeReactor) Stop(context.Context) error  { return nil }
func (r *fakeReactor) Addrs() (ws, tcp net.Addr)   { return &net.TCPAddr{}, &net.TCPAddr{} }
func (r *fakeReactor) setErr(err error)            { r.mu.Lock(); r.err = err; r.mu.Unlock() }
func (r *fakeReactor) ServingErr() error           { r.mu.Lock(); defer r.mu.Unlock(); return r.err }

// readyOf calls s's /readyz handler and returns its status and error message.
func readyOf(t *testing.T, s *Server) (int, string) {
	t.Helper()
	w := httptest.NewRecorder()
	s.handleReady(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	var body struct {
		Err struct {
			Msg string `json:"msg"`
		} `json:"err"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("/readyz body %q: %v", w.Body.Bytes(), err)
	}
	return w.Code, body.Err.Msg
}

// TestReadyzNotServing: /readyz answers 503, naming the reason, while the
// reactor reports a listener or loop that is not serving, or while the
// HTTP listener is down; 200 once it serves again.
func TestReadyzNotServing(t *testing.T) {
	s, _ := testServer(t, Config{})
	r := &fakeReactor{}
	s.engineNet = r
	if code, msg := readyOf(t, s); code != http.StatusOK {
		t.Fatalf("/readyz %d %q while serving, want 200", code, msg)
	}
	r.setErr(errors.New("tcp listener: accept: too many open files"))
	if code, msg := readyOf(t, s); code != http.StatusServiceUnavailable || !strings.Contains(msg, "tcp listener: accept: too many open files") {
		t.Fatalf("/readyz %d %q with a reactor not serving, want 503 naming the reason", code, msg)
	}
	r.setErr(nil)
	if code, msg := readyOf(t, s); code != http.StatusOK {
		t.Fatalf("/readyz %d %q once the reactor serves again, want 200", code, msg)
	}
	s.httpDown.Set(errors.New("http listener stopped: boom"))
	if code, msg := readyOf(t, s); code != http.StatusServiceUnavailable || !strings.Contains(msg, "http listener stopped: boom") {
		t.Fatalf("/readyz %d %q with the HTTP listener down, want 503 naming it", code, msg)
	}
}

// serveHTTPOn starts the HTTP server of a test server, whose reactor
// serves nothing, on a fresh loopback listener as wrap makes it.
func serveHTTPOn(t *testing.T, wrap func(net.Listener) net.Listener) *Server {
	t.Helper()
	s, _ := testServer(t, Config{})
	s.engineNet = &fakeReactor{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	s.httpLn = wrap(ln)
	s.serveHTTP()
	t.Cleanup(func() { _ = s.httpSrv.Close() })
	return s
}

// brokenListener fails every Accept with an error that is not temporary.
type brokenListener struct{ net.Listener }

func (brokenListener) Accept() (net.Conn, error) {
	return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EINVAL)}
}

// TestReadyzHTTPListenerStopped: when the HTTP listener's Serve ends with
// an error, /readyz (asked through another path: the admin listener or a
// kept-alive connection) answers 503.
func TestReadyzHTTPListenerStopped(t *testing.T) {
	s := serveHTTPOn(t, func(ln net.Listener) net.Listener { return brokenListener{ln} })
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, msg := readyOf(t, s)
		if code == http.StatusServiceUnavailable && strings.Contains(msg, "http listener stopped") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz %d %q after the HTTP listener stopped, want 503", code, msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// emfileListener accepts, and while failing is set closes what it
// accepted and reports EMFILE, as accept(2) does when the process is out of
// file descriptors.
type emfileListener struct {
	net.Listener
	failing atomic.Bool
	failed  atomic.Int64
}

func (l *emfileListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil || !l.failing.Load() {
		return c, err
	}
	_ = c.Close()
	l.failed.Add(1)
	return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: os.NewSyscallError("accept4", syscall.EMFILE)}
}

// TestHTTPAcceptEMFILE: running out of file descriptors does not stop the
// HTTP server (net/http backs off and accepts again), and /readyz says 503
// while accepts fail.
func TestHTTPAcceptEMFILE(t *testing.T) {
	var el *emfileListener
	serveHTTPOn(t, func(ln net.Listener) net.Listener {
		el = &emfileListener{Listener: ln}
		return el
	})

	// A kept-alive connection, accepted before the descriptors ran out.
	kept, err := net.Dial("tcp", el.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	br := bufio.NewReader(kept)
	get := func(path string) int {
		t.Helper()
		_ = kept.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintf(kept, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz %d before accepts fail", code)
	}

	el.failing.Store(true)
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", el.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = c.Read(make([]byte, 1)) // closed by the failing accept
		c.Close()
	}
	if el.failed.Load() == 0 {
		t.Fatal("no accept failed")
	}
	if code := get("/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz %d while accepts fail with EMFILE, want 503", code)
	}

	el.failing.Store(false)
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + el.Addr().String() + "/readyz")
	if err != nil {
		t.Fatalf("no new connection served after EMFILE: %v", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz %d once accepts succeed again, want 200", resp.StatusCode)
	}
	if code := get("/healthz"); code != http.StatusOK {
		t.Fatalf("kept-alive connection: /healthz %d after EMFILE", code)
	}
}

// TestHTTPServerBounds: the HTTP listeners bound a request's headers and
// its reading, the idle time between requests, and the writing of answers
// (which starts once the headers are in, so it outlasts the reading).
func TestHTTPServerBounds(t *testing.T) {
	s, _ := testServer(t, Config{})
	hs := s.newHTTPServer(http.NotFoundHandler())
	if hs.ReadHeaderTimeout != 10*time.Second || hs.ReadTimeout != 30*time.Second ||
		hs.IdleTimeout != 60*time.Second || hs.MaxHeaderBytes != 16<<10 {
		t.Fatalf("http.Server read header %v, read %v, idle %v, max header %d; want 10s, 30s, 60s, 16384",
			hs.ReadHeaderTimeout, hs.ReadTimeout, hs.IdleTimeout, hs.MaxHeaderBytes)
	}
	if hs.WriteTimeout <= hs.ReadTimeout {
		t.Fatalf("write timeout %v not past the read timeout %v", hs.WriteTimeout, hs.ReadTimeout)
	}
}
