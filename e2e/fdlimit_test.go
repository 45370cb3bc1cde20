package e2e

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os/exec"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestOutOfFileDescriptors runs the server under an open-file limit of 300
// with --max-conns above it, and opens more connections than it can hold:
// accepting must pause and resume, not stop. Every client already
// connected stays served, and once descriptors are free again new clients
// are accepted and /readyz is ready.
func TestOutOfFileDescriptors(t *testing.T) {
	if engine == "evio" {
		t.Skip("evio stops on an accept error, a limit of that engine (README, engines)")
	}
	bin := tickfanBinary(t)
	args := []string{"serve", "--ws-addr", "127.0.0.1:0", "--tcp-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--api-key", apiKey, "--max-conns", "1000"}
	if engine != "" {
		args = append(args, "--engine", engine)
	}
	p := startCmd(t, under300Files(bin, args))
	healthy := wsDial(t, p.ws, 0)
	wsSub(t, healthy, "book.HEALTHY")

	conns := dialMany(t, p.tcp, 400)
	// Ping on each: those the server holds answer; those it could not
	// take are closed, or wait in the backlog (a deadline ends the wait).
	// Wait until the server has met the limit (or give up waiting: what
	// follows fails then if the server did not survive it).
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if errs, err := p.tryMetric("tickfan_accept_errors_total"); err == nil && errs > 0 {
			break
		}
	}
	for _, c := range conns {
		c.Close()
	}

	// Descriptors are free again: new clients are served, the old one too.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if httpStatus(t, p.httpURL+"/readyz") == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("/readyz not ready after the descriptors were given back")
		}
	}
	late := wsDial(t, p.ws, 0)
	wsSub(t, late, "book.HEALTHY")
	p.publishBatch(t, []byte(`{"t":"book.HEALTHY","d":1}`))
	for _, ws := range []interface {
		SetReadDeadline(time.Time) error
		ReadJSON(any) error
	}{healthy, late} {
		var m map[string]any
		_ = ws.SetReadDeadline(time.Now().Add(readTimeout))
		if err := ws.ReadJSON(&m); err != nil || m["s"] != float64(1) {
			t.Fatalf("subscriber after the descriptors ran out: %v %v, want seq 1", m, err)
		}
	}
	if errs := p.metric(t, "tickfan_accept_errors_total"); errs == 0 {
		t.Fatalf("no accept error counted with %d connections under a limit of 300 descriptors", 400)
	}
}

// TestEvioStopIsNotReady: evio ends its Serve on an accept error other
// than "try again" and closes every connection (a limit of that engine,
// README "Engines"); the node then serves no client, and /readyz must
// answer 503 with the reason so that a load balancer takes it out of
// rotation, not 200 as if nothing happened. Runs with --engine evio
// whatever TICKFAN_ENGINE says.
func TestEvioStopIsNotReady(t *testing.T) {
	bin := tickfanBinary(t)
	args := []string{"serve", "--ws-addr", "127.0.0.1:0", "--tcp-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--max-conns", "1000", "--engine", "evio"}
	p := startCmd(t, under300Files(bin, args))
	if code := httpStatus(t, p.httpURL+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz %d before the descriptors ran out", code)
	}
	conns := dialMany(t, p.tcp, 400)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(p.httpURL + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable {
				if !bytes.Contains(body, []byte("evio engine stopped serving")) {
					t.Fatalf("/readyz 503 without the reason: %s", body)
				}
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still ready 10 s after %d connections passed a limit of 300 descriptors (evio has stopped serving)", len(conns))
		}
	}
}

// under300Files runs the binary with args under an open-file limit of 300.
func under300Files(bin string, args []string) *exec.Cmd {
	return exec.Command("sh", append([]string{"-c", `ulimit -Sn 300 && ulimit -Hn 300 && exec "$0" "$@"`, bin}, args...)...)
}

// dialMany opens up to n TCP connections to addr, fewer when a dial fails
// (the backlog is full: the server stopped taking more for now); the test
// closes those still open when it ends.
func dialMany(t *testing.T, addr string, n int) []net.Conn {
	var conns []net.Conn
	for i := 0; i < n; i++ {
		c, err := net.DialTimeout("tcp", addr, readTimeout)
		if err != nil {
			break
		}
		conns = append(conns, c)
		t.Cleanup(func() { c.Close() })
	}
	return conns
}

// tryMetric reads one sample of the process's /metrics, or says why not.
func (p *proc) tryMetric(name string) (float64, error) {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(p.httpURL + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	tp := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := tp.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		return 0, err
	}
	return metricFamilies(fams).sum(name), nil
}
