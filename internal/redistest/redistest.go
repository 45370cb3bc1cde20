// Package redistest starts real Redis processes on 127.0.0.1 for tests:
// single servers (Start) and clusters of masters (StartCluster).
//
// Every server listens on a free loopback port, keeps nothing on disk
// (--save "" --appendonly no, its own temporary directory) and is killed,
// and waited for, in the test's Cleanup, also when the test fails half-way.
// The processes also get SIGKILL when the test binary dies without running
// its Cleanups (Linux), so a timed-out test run leaves no Redis behind.
//
// A test can take a server away in the two ways a broker meets in
// production: Kill (the process is gone and its data with it; Restart brings
// an empty one back on the same port) and Pause (SIGSTOP: sockets stay open
// but nothing answers, until Resume).
//
// The tests need redis-server and redis-cli on the PATH; scripts/setup
// installs them. Without them Require skips the test, except under CI=true,
// where it fails it.
package redistest

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

const (
	// readyTimeout bounds the wait for a new process to answer PING.
	readyTimeout = 10 * time.Second
	// killTimeout bounds the wait for a killed process to be reaped.
	killTimeout = 10 * time.Second
	// launchAttempts is how often a start is tried again after the port
	// turned out to be taken by someone else in the meantime.
	launchAttempts = 5
)

// binaries returns the paths of redis-server and redis-cli.
func binaries() (server, cli string, err error) {
	if server, err = exec.LookPath("redis-server"); err != nil {
		return "", "", errors.New("redis-server not found: scripts/setup installs it")
	}
	if cli, err = exec.LookPath("redis-cli"); err != nil {
		return "", "", errors.New("redis-cli not found: scripts/setup installs it")
	}
	return server, cli, nil
}

// Require finds redis-server and redis-cli on the PATH. When one is missing
// it skips the test, or, with the environment variable CI set to "true",
// fails it: a CI machine is set up by scripts/setup and must not pass by
// skipping the Redis tests. Start and StartCluster call it.
func Require(t testing.TB) {
	t.Helper()
	_, _, err := binaries()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(err.Error())
		return // only reached with a testing.TB whose Fatal returns
	}
	t.Skip(err.Error() + " (skipped; fails under CI=true)")
}

// errPortInUse marks a start that failed because the port (or the cluster
// bus port) was taken between choosing it and redis-server binding it.
var errPortInUse = errors.New("port in use")

// Server is one redis-server process on 127.0.0.1.
type Server struct {
	Addr    string // "127.0.0.1:port"
	Port    int
	BusPort int    // cluster bus port of a cluster node, otherwise 0
	Dir     string // the server's own temporary directory (--dir), holding redis.log

	bin  string
	argv []string
	log  string

	mu     sync.Mutex
	cmd    *exec.Cmd     // nil while not running
	done   chan struct{} // closed when cmd has exited
	client rueidis.Client
}

// Start starts a redis-server on a free port of 127.0.0.1 with
//
//	--port P --bind 127.0.0.1 --save '' --appendonly no --dir <temp dir> [args...]
//
// waits until it answers PING (at most 10 s) and kills it in t's Cleanup.
// Its output goes to redis.log in Dir; a failed start shows the log's tail.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	return start(t, false, args)
}

func start(t testing.TB, cluster bool, args []string) *Server {
	t.Helper()
	Require(t)
	bin, _, err := binaries()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{bin: bin, Dir: t.TempDir()}
	s.log = filepath.Join(s.Dir, "redis.log")
	// Registered after TempDir, so it runs before the directory is removed.
	t.Cleanup(func() {
		s.Kill()
		release(s.Port, s.BusPort)
	})
	for attempt := 1; ; attempt++ {
		release(s.Port, s.BusPort) // of the attempt before, if any
		s.Port, s.BusPort = 0, 0
		if s.Port, err = freePort(); err != nil {
			t.Fatal(err)
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port))
		s.argv = []string{
			"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", s.Dir,
		}
		if cluster {
			if s.BusPort, err = freePort(); err != nil {
				t.Fatal(err)
			}
			s.argv = append(s.argv,
				"--cluster-enabled", "yes",
				"--cluster-config-file", filepath.Join(s.Dir, "nodes.conf"),
				"--cluster-node-timeout", "2000",
				"--cluster-port", strconv.Itoa(s.BusPort))
		}
		s.argv = append(s.argv, args...)
		err = s.launch()
		if err == nil {
			return s
		}
		if !errors.Is(err, errPortInUse) || attempt == launchAttempts {
			t.Fatalf("redistest: starting redis-server: %v", err)
		}
	}
}

// PID returns the process id of the running redis-server, 0 when none runs.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Kill sends SIGKILL (also to a paused server) and waits until the process
// is gone: the server and its data are lost. It does nothing when the
// server does not run.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.cmd.Process.Kill()
		select {
		case <-s.done:
		case <-time.After(killTimeout):
		}
		s.cmd, s.done = nil, nil
	}
	// After the kill, so that closing does not wait on a stopped server.
	if s.client != nil {
		s.client.Close()
		s.client = nil
	}
}

// Restart kills the server if it runs and starts it again on the same port
// (and cluster bus port) with the same arguments: the dataset is empty. A
// cluster node keeps its nodes.conf and so its place and slots in the
// cluster. It waits until the new process answers PING.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Kill()
	var err error
	for attempt := 1; attempt <= launchAttempts; attempt++ {
		if err = s.launch(); err == nil || !errors.Is(err, errPortInUse) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("redistest: restarting redis-server on %s: %v", s.Addr, err)
	}
}

// Pause stops the process with SIGSTOP: connections stay open, the kernel
// still accepts new ones, but nothing is answered until Resume.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused server with SIGCONT.
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig os.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.cmd.Process.Signal(sig)
	}
}
