package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The tests in this file run the real tickfan binary in a process of its
// own, so that what they measure of it (RSS) is the server's alone.

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// TestMain removes the binary tickfanBinary built, once every test is done.
func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// tickfanBinary builds cmd/tickfan once per test run.
func tickfanBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tickfan-e2e")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "tickfan")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/tickfan").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// proc is a running tickfan serve process and its bound addresses.
type proc struct {
	cmd              *exec.Cmd
	ws, tcp, httpURL string
	serving          string // the log line that gave them
}

var servingLine = regexp.MustCompile(`ws=ws://(\S+)/ws tcp=(\S+) http=(\S+)`)

// startProc runs `tickfan serve` on OS-chosen loopback ports with extra
// flags, and stops it when the test ends.
func startProc(t *testing.T, flags ...string) *proc {
	t.Helper()
	args := append([]string{"serve", "--ws-addr", "127.0.0.1:0", "--tcp-addr", "127.0.0.1:0",
		"--http-addr", "127.0.0.1:0", "--api-key", apiKey}, flags...)
	if engine != "" {
		args = append(args, "--engine", engine)
	}
	return startCmd(t, exec.Command(tickfanBinary(t), args...))
}

// startCmd starts a prepared tickfan serve command, reads its addresses
// from its log, and stops it (SIGINT, then a kill) when the test ends.
func startCmd(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default: // nobody reads after start-up; never block the server
			}
		}
	}()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case l := <-lines:
			if m := servingLine.FindStringSubmatch(l); m != nil {
				return &proc{cmd: cmd, ws: m[1], tcp: m[2], httpURL: m[3], serving: l}
			}
		case <-deadline:
			t.Fatalf("tickfan serve did not report its addresses (%v)", cmd.Args)
		}
	}
}

// rssBytes reads the process's resident set size.
func (p *proc) rssBytes(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// publishBatch posts a batch to the process's HTTP API.
func (p *proc) publishBatch(t *testing.T, body []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, p.httpURL+"/api/publish", bytes.NewReader(body))
	req.Header.Set("Authorization", "apikey "+apiKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var out bytes.Buffer
		_, _ = out.ReadFrom(resp.Body)
		t.Fatalf("publish: %s %s", resp.Status, out.String())
	}
}

// metric reads one sample of the process's /metrics.
func (p *proc) metric(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := http.Get(p.httpURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return parseMetrics(t, raw).sum(name)
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }
