package e2e

import (
	"net"
	"os/exec"
	"strings"
	"testing"
)

// freePort returns a loopback address whose port was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestRestartOnSamePorts kills a server with clients connected and starts
// a new one on the same ports at once: the connections of the old process
// in TIME_WAIT must not keep the new one from binding.
func TestRestartOnSamePorts(t *testing.T) {
	wsAddr, tcpAddr, httpAddr := freePort(t), freePort(t), freePort(t)
	flags := []string{"--ws-addr", wsAddr, "--tcp-addr", tcpAddr, "--http-addr", httpAddr}
	for round := 0; round < 2; round++ {
		p := startProc(t, flags...)
		ws := wsDial(t, p.ws, 0)
		wsSub(t, ws, "book.RESTART")
		tcp := dialTCPPinged(t, p.tcp).c
		if err := p.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = p.cmd.Wait()
		// The clients see the end and close: the server's side of each
		// connection is now in TIME_WAIT on the listening ports.
		ws.Close()
		tcp.Close()
	}
}

// TestBindErrorNamesAddress: a port in use fails the start with one line
// that names the address.
func TestBindErrorNamesAddress(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr := busy.Addr().String()
	for _, flag := range []string{"--ws-addr", "--tcp-addr", "--http-addr"} {
		args := []string{"serve", "--ws-addr", "127.0.0.1:0", "--tcp-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", flag, addr}
		if engine != "" {
			args = append(args, "--engine", engine)
		}
		out, err := exec.Command(tickfanBinary(t), args...).CombinedOutput()
		if err == nil {
			t.Fatalf("%s %s (in use): tickfan serve started", flag, addr)
		}
		if !strings.Contains(string(out), addr) || !strings.Contains(string(out), "address already in use") {
			t.Fatalf("%s %s (in use): %q, want an error naming the address", flag, addr, out)
		}
	}
}
