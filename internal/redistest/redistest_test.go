package redistest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

func TestStartDoKillRestart(t *testing.T) {
	t.Parallel()
	s := Start(t)
	if !strings.HasPrefix(s.Addr, "127.0.0.1:") || s.Addr != "127.0.0.1:"+strconv.Itoa(s.Port) {
		t.Fatalf("Addr %q, Port %d", s.Addr, s.Port)
	}
	if got := s.Info(t, "server")["tcp_port"]; got != strconv.Itoa(s.Port) {
		t.Fatalf("INFO server tcp_port = %q, want %d", got, s.Port)
	}
	if got := s.Do(t, "SET", "k", "v"); got != "OK" {
		t.Fatalf("SET = %q", got)
	}
	if got := s.Do(t, "GET", "k"); got != "v" {
		t.Fatalf("GET = %q", got)
	}
	if got := s.Do(t, "GET", "missing"); got != "(nil)" {
		t.Fatalf("GET missing = %q", got)
	}
	if got := s.Int(t, "INCRBY", "n", "41"); got != 41 {
		t.Fatalf("INCRBY = %d", got)
	}
	if got := s.Do(t, "NOSUCHCOMMAND"); !strings.HasPrefix(got, "unknown command") {
		t.Fatalf("unknown command = %q", got)
	}
	if got := s.Do(t, "LPUSH", "k", "x"); !strings.HasPrefix(got, "WRONGTYPE ") {
		t.Fatalf("LPUSH on a string = %q", got)
	}
	if got := s.Int(t, "DBSIZE"); got != 2 {
		t.Fatalf("DBSIZE = %d", got)
	}
	for _, p := range []string{"save", "appendonly"} {
		if got := s.Strings(t, "CONFIG", "GET", p); len(got) != 2 || (got[1] != "" && got[1] != "no") {
			t.Fatalf("CONFIG GET %s = %q", p, got)
		}
	}
	if s.CPU(t) < 0 {
		t.Fatal("negative CPU")
	}

	pid := s.PID()
	s.Kill()
	if _, err := s.Result(context.Background(), "PING"); err == nil {
		t.Fatal("PING answered after Kill")
	}
	if got := s.Do(t, "PING"); got == "PONG" {
		t.Fatal("Do PING answered after Kill")
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("process %d still there after Kill: %v", pid, err)
	}

	addr := s.Addr
	s.Restart(t)
	if s.Addr != addr || s.PID() == pid || s.PID() == 0 {
		t.Fatalf("after Restart: Addr %s (was %s), pid %d (was %d)", s.Addr, addr, s.PID(), pid)
	}
	if got := s.Do(t, "PING"); got != "PONG" {
		t.Fatalf("PING after Restart = %q", got)
	}
	if got := s.Do(t, "GET", "k"); got != "(nil)" {
		t.Fatalf("GET after Restart = %q, want an empty dataset", got)
	}
	if got := s.Int(t, "DBSIZE"); got != 0 {
		t.Fatalf("DBSIZE after Restart = %d", got)
	}
	// A Restart of a running server replaces it, too.
	s.Do(t, "SET", "k", "v")
	s.Restart(t)
	if got := s.Int(t, "DBSIZE"); got != 0 {
		t.Fatalf("DBSIZE after second Restart = %d", got)
	}
}

func TestExtraArgs(t *testing.T) {
	t.Parallel()
	s := Start(t, "--maxmemory", "10mb", "--maxmemory-policy", "allkeys-lru")
	if got := s.Strings(t, "CONFIG", "GET", "maxmemory-policy"); len(got) != 2 || got[1] != "allkeys-lru" {
		t.Fatalf("CONFIG GET maxmemory-policy = %q", got)
	}
	s.Restart(t)
	if got := s.Strings(t, "CONFIG", "GET", "maxmemory"); len(got) != 2 || got[1] != "10485760" {
		t.Fatalf("CONFIG GET maxmemory after Restart = %q", got)
	}
}

func TestCommandStats(t *testing.T) {
	t.Parallel()
	s := Start(t)
	// Another client connected meanwhile, blocked in BLPOP.
	other, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	fmt.Fprintf(other, "BLPOP q 10\r\n")

	sha := s.Do(t, "SCRIPT", "LOAD", "return redis.call('INCR', KEYS[1])")
	s.ResetStats(t)
	for range 5 {
		s.Do(t, "SET", "k", "v")
	}
	for range 3 {
		s.Do(t, "GET", "k")
	}
	for i := range 4 {
		if got := s.Int(t, "EVALSHA", sha, "1", "counter"); got != int64(i+1) {
			t.Fatalf("EVALSHA = %d", got)
		}
	}
	s.Do(t, "XADD", "st", "*", "f", "v")
	s.Do(t, "XRANGE", "st", "-", "+")
	s.Do(t, "XRANGE", "st", "-", "+")
	s.Do(t, "CLIENT", "ID")
	s.Do(t, "CLIENT", "ID")
	if got := s.Int(t, "LPUSH", "q", "x"); got != 1 {
		t.Fatalf("LPUSH = %d", got)
	}
	other.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := bufio.NewReader(other).ReadString('\n'); err != nil || line != "*2\r\n" {
		t.Fatalf("BLPOP on the other connection: %q, %v", line, err)
	}

	stats := s.CommandStats(t)
	want := map[string]int64{
		"set": 5, "get": 3, "evalsha": 4, "incr": 4, "xadd": 1, "xrange": 2,
		"client|id": 2, "lpush": 1,
	}
	for name, n := range want {
		if stats[name] != n {
			t.Errorf("CommandStats[%q] = %d, want %d (all: %v)", name, stats[name], n, stats)
		}
	}
	for _, name := range []string{"ping", "hello", "client|setinfo", "script|load"} {
		if stats[name] != 0 {
			t.Errorf("CommandStats[%q] = %d, want 0", name, stats[name])
		}
	}
	s.ResetStats(t)
	if got := s.CommandStats(t)["set"]; got != 0 {
		t.Errorf("set after ResetStats = %d", got)
	}
}

func TestPauseResume(t *testing.T) {
	t.Parallel()
	s := Start(t)
	s.Do(t, "SET", "k", "v")
	s.Pause()

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err := s.Result(ctx, "PING")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("PING to a paused server: %v, want a deadline exceeded", err)
	}
	// The kernel still accepts connections for the stopped process.
	c, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		t.Fatalf("dialing a paused server: %v", err)
	}
	c.Close()

	s.Resume()
	if got := s.Do(t, "GET", "k"); got != "v" {
		t.Fatalf("GET after Resume = %q", got)
	}

	// Cleanup kills a paused server as well.
	s.Pause()
}

func TestCluster(t *testing.T) {
	t.Parallel()
	c := StartCluster(t, 3)
	if len(c.Nodes) != 3 || len(c.Addrs) != 3 {
		t.Fatalf("%d nodes, %d addrs", len(c.Nodes), len(c.Addrs))
	}
	for _, s := range c.Nodes {
		info := parseInfo(s.Do(t, "CLUSTER", "INFO"))
		if info["cluster_state"] != "ok" || info["cluster_slots_assigned"] != "16384" {
			t.Fatalf("%s: CLUSTER INFO %v", s.Addr, info)
		}
	}

	// One key per master, told apart by hash tag.
	keys := map[*Server]string{}
	for i := 0; len(keys) < len(c.Nodes) && i < 1000; i++ {
		key := fmt.Sprintf("{tag%d}:k", i)
		if owner := c.Owner(t, key); keys[owner] == "" {
			keys[owner] = key
		}
	}
	if len(keys) != len(c.Nodes) {
		t.Fatalf("keys for %d of %d masters", len(keys), len(c.Nodes))
	}

	client, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: c.Addrs, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	c.ResetStats(t)
	ctx := context.Background()
	for _, key := range keys {
		if err := client.Do(ctx, client.B().Set().Key(key).Value(key).Build()).Error(); err != nil {
			t.Fatalf("SET %s: %v", key, err)
		}
	}
	if got := c.CommandStats(t)["set"]; got != int64(len(keys)) {
		t.Errorf("SETs summed over the nodes = %d, want %d", got, len(keys))
	}
	for owner, key := range keys {
		slot := strconv.Itoa(c.Slot(t, key))
		for _, s := range c.Nodes {
			n := s.Int(t, "CLUSTER", "COUNTKEYSINSLOT", slot)
			got := s.Do(t, "GET", key)
			switch {
			case s == owner && (n != 1 || got != key):
				t.Errorf("owner %s of %s: COUNTKEYSINSLOT %d, GET %q", s.Addr, key, n, got)
			case s != owner && (n != 0 || !strings.HasPrefix(got, "MOVED "+slot+" "+owner.Addr)):
				t.Errorf("%s, not owning %s: COUNTKEYSINSLOT %d, GET %q", s.Addr, key, n, got)
			}
		}
		if got := owner.Int(t, "DBSIZE"); got != 1 {
			t.Errorf("DBSIZE of %s = %d", owner.Addr, got)
		}
	}

	// A node's Restart: back as master of the same slots, without the keys.
	for owner, key := range keys {
		owner.Restart(t)
		c.WaitOK(t)
		if got := c.Owner(t, key); got != owner {
			t.Errorf("after Restart, %s is served by %s, not %s", key, got.Addr, owner.Addr)
		}
		if got := owner.Do(t, "GET", key); got != "(nil)" {
			t.Errorf("GET %s after Restart = %q", key, got)
		}
		break
	}

	for _, key := range keys {
		client.Do(ctx, client.B().Set().Key(key).Value(key).Build())
	}
	c.FlushAll(t)
	for _, s := range c.Nodes {
		if got := s.Int(t, "DBSIZE"); got != 0 {
			t.Errorf("DBSIZE of %s after FlushAll = %d", s.Addr, got)
		}
	}
}

func TestCleanupKills(t *testing.T) {
	t.Parallel()
	var pid int
	var addr string
	t.Run("inner", func(t *testing.T) {
		s := Start(t)
		pid, addr = s.PID(), s.Addr
	})
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("redis-server %d still there after its test ended: %v", pid, err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections after its test ended", addr)
	}
}

// fakeTB records what Require does instead of ending the test.
type fakeTB struct {
	testing.TB
	fatal, skip string
}

func (f *fakeTB) Helper()           {}
func (f *fakeTB) Fatal(args ...any) { f.fatal = fmt.Sprint(args...) }
func (f *fakeTB) Skip(args ...any)  { f.skip = fmt.Sprint(args...) }

func TestRequireWithoutRedis(t *testing.T) {
	t.Setenv("PATH", t.TempDir())

	t.Setenv("CI", "true")
	f := &fakeTB{TB: t}
	Require(f)
	if f.fatal != "redis-server not found: scripts/setup installs it" || f.skip != "" {
		t.Errorf("under CI=true: Fatal %q, Skip %q", f.fatal, f.skip)
	}

	t.Setenv("CI", "")
	f = &fakeTB{TB: t}
	Require(f)
	if f.fatal != "" || !strings.HasPrefix(f.skip, "redis-server not found") {
		t.Errorf("without CI: Fatal %q, Skip %q", f.fatal, f.skip)
	}
}
