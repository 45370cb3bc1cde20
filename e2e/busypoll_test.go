package e2e

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// cpuTime reads the process's user and system CPU time.
func (p *proc) cpuTime(t *testing.T) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name, which is in parentheses: utime and
	// stime are the 12th and 13th of them, in clock ticks (100 a second).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// TestBusyPollServesThenSleeps runs the binary with --busy-poll: pubs and
// pings are answered and delivered in order while the loops spin, and
// once the clients are quiet the loops sleep again: the process spends
// almost no CPU in the second that follows (a spin that never ended
// would spend all of it).
func TestBusyPollServesThenSleeps(t *testing.T) {
	if engine != "" && engine != "gnet" {
		t.Skipf("--busy-poll is the gnet engine's; this run is on %s", engine)
	}
	p := startProc(t, "--busy-poll", "2ms", "--anonymous-pub", ">", "--loops", "1", "--cmd-rate", "1000000")
	sub := &client{name: "tcp", f: msgpackFormat}
	sc := dialConn(t, "tcp", p.tcp)
	sub.w = &tcpWire{c: sc, r: bufio.NewReader(sc)}
	pub := &client{name: "tcp", f: msgpackFormat}
	pc := dialConn(t, "tcp", p.tcp)
	pub.w = &tcpWire{c: pc, r: bufio.NewReader(pc)}

	sub.sub1(t, "spin.a", nil)
	const n = 200
	for i := 1; i <= n; i++ {
		pub.pub(t, "spin.a", i, false) // one at a time: each waits for its ack
		sub.nextPub(t, "spin.a", uint64(i), i, false)
		if i%50 == 0 {
			sub.alive(t) // a ping answered while the loop polls
		}
	}
	time.Sleep(100 * time.Millisecond) // the windows end
	before := p.cpuTime(t)
	time.Sleep(time.Second)
	if used := p.cpuTime(t) - before; used > 200*time.Millisecond {
		t.Fatalf("the server used %v of CPU in a quiet second after the traffic: the loop went on polling", used)
	}
	// And it wakes for the next message as before.
	pub.pub(t, "spin.a", n+1, false)
	sub.nextPub(t, "spin.a", n+1, n+1, false)
}

// TestSpareProcBesideTheLoops: tickfan serve gives the Go runtime one P
// more than its event loops, so that the HTTP API, Redis and timers do
// not wait for a loop asleep in epoll_wait; a GOMAXPROCS set in the
// environment is kept.
func TestSpareProcBesideTheLoops(t *testing.T) {
	if engine == "std" {
		t.Skip("the std engine's connections wait in the Go netpoller: no P is held")
	}
	gomaxprocs := func(p *proc) int {
		t.Helper()
		for _, f := range strings.Fields(p.serving) {
			if v, ok := strings.CutPrefix(f, "gomaxprocs="); ok {
				n, err := strconv.Atoi(v)
				if err != nil {
					t.Fatalf("serving line %q: %v", p.serving, err)
				}
				return n
			}
		}
		t.Fatalf("serving line %q has no gomaxprocs", p.serving)
		return 0
	}
	unset := startCmd(t, serveCmd(t, []string{"GOMAXPROCS="}, "--loops", "3"))
	if n := gomaxprocs(unset); n < 4 {
		t.Errorf("3 loops, GOMAXPROCS not set: the server runs with %d Ps, want at least 4", n)
	}
	set := startCmd(t, serveCmd(t, []string{"GOMAXPROCS=1"}, "--loops", "1"))
	if n := gomaxprocs(set); n != 1 {
		t.Errorf("GOMAXPROCS=1 in the environment: the server runs with %d Ps, want 1", n)
	}
}

// serveCmd is tickfan serve on loopback ports with env added to (or,
// for "NAME=", removed from) the test's environment.
func serveCmd(t *testing.T, env []string, flags ...string) *exec.Cmd {
	t.Helper()
	args := append([]string{"serve", "--ws-addr", "127.0.0.1:0", "--tcp-addr", "127.0.0.1:0",
		"--http-addr", "127.0.0.1:0"}, flags...)
	if engine != "" {
		args = append(args, "--engine", engine)
	}
	cmd := exec.Command(tickfanBinary(t), args...)
	for _, kv := range os.Environ() {
		drop := false
		for _, e := range env {
			name, _, _ := strings.Cut(e, "=")
			drop = drop || strings.HasPrefix(kv, name+"=")
		}
		if !drop {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for _, e := range env {
		if !strings.HasSuffix(e, "=") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	return cmd
}
