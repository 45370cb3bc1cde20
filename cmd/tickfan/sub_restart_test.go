package main

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tickfan/tickfan/internal/redistest"
	"github.com/tickfan/tickfan/internal/servertest"
	"github.com/tickfan/tickfan/server"
)

// subLine is any line tickfan sub prints.
type subLine struct {
	Event  string          `json:"event"`
	Op     string          `json:"op"`
	T      string          `json:"t"`
	E      string          `json:"e"`
	S      uint64          `json:"s"`
	D      json.RawMessage `json:"d"`
	From   uint64          `json:"from"`
	Missed uint64          `json:"missed"`
}

// kind is what a line is: a publication ("pub"), the server's op or
// sub's own event.
func (l subLine) kind() string {
	switch {
	case l.Event != "":
		return l.Event
	case l.Op != "":
		return l.Op
	}
	return "pub"
}

// until reads sub's lines, failing on any that is not JSON, until one of
// kind want; it returns the lines read, that one last.
func (r *subRun) until(t *testing.T, want string) []subLine {
	t.Helper()
	var lines []subLine
	for {
		raw := r.line(t)
		var l subLine
		if err := json.Unmarshal([]byte(raw), &l); err != nil {
			t.Fatalf("line %q is not JSON: %v", raw, err)
		}
		lines = append(lines, l)
		if l.kind() == want {
			return lines
		}
	}
}

// kinds lists what the lines are, a publication as "pub <s> <d>", leaving
// out connection attempts (how many a restart takes is the scheduler's
// affair).
func kinds(lines []subLine) []string {
	var out []string
	for _, l := range lines {
		switch k := l.kind(); k {
		case "connected", "disconnected":
		case "pub":
			out = append(out, "pub "+strconv.FormatUint(l.S, 10)+" "+string(l.D))
		case "recovered":
			out = append(out, "recovered from "+strconv.FormatUint(l.From, 10)+" missed "+strconv.FormatUint(l.Missed, 10))
		default:
			out = append(out, k+" "+strconv.FormatUint(l.S, 10))
		}
	}
	return out
}

func checkKinds(t *testing.T, what string, lines []subLine, want ...string) {
	t.Helper()
	if got := kinds(lines); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("%s: sub printed %q, want %q", what, got, want)
	}
}

// TestSubRecoversAcrossRestartWithRedis stops the node tickfan sub is
// connected to, publishes on another node of the same Redis while it is
// down, and starts it again on the same ports: the history is in Redis,
// so sub continues the topic with exactly the publications it missed
// (rec true), then the live ones, each seq printed once.
func TestSubRecoversAcrossRestartWithRedis(t *testing.T) {
	rd := redistest.Start(t)
	cfg := server.Config{Redis: rd.Addr, APIKey: testAPIKey}
	a := servertest.Start(t, cfg)
	b := servertest.Start(t, cfg)
	const topic = "restart.redis"
	r := startSub(t, "--url", a.WSURL(), "--backoff-max", "200ms", "-n", "6", topic)
	start := r.until(t, "subscribed")
	epoch := start[len(start)-1].E

	for i := 1; i <= 3; i++ {
		pubHTTP(t, b.HTTPURL(), topic, strconv.Itoa(i), false)
	}
	checkKinds(t, "before the restart", append(start, r.until(t, "pub")[0], r.until(t, "pub")[0], r.until(t, "pub")[0]),
		"subscribed 0", "pub 1 1", "pub 2 2", "pub 3 3")

	a.Stop()
	r.until(t, "disconnected")
	for i := 4; i <= 5; i++ {
		if p := pubHTTP(t, b.HTTPURL(), topic, strconv.Itoa(i), false); p.E != epoch {
			t.Fatalf("publication %d in epoch %s, want %s: the history in Redis is the same", i, p.E, epoch)
		}
	}
	a.Start()
	restarted := time.Now()
	back := r.until(t, "recovered")
	t.Logf("sub recovered %v after the node was back (--backoff-max 200ms)", time.Since(restarted))
	if l := back[len(back)-1]; l.E != epoch || l.T != topic {
		t.Fatalf("recovered %+v, want %s in epoch %s", l, topic, epoch)
	}
	back = append(back, r.until(t, "pub")[0], r.until(t, "pub")[0])
	checkKinds(t, "after the restart", back, "recovered from 3 missed 2", "pub 4 4", "pub 5 5")

	pubHTTP(t, a.HTTPURL(), topic, "6", false)
	checkKinds(t, "live again", r.until(t, "pub"), "pub 6 6")
	if code := r.exit(t); code != 0 {
		t.Fatalf("exit %d after -n 6, want 0; stderr %q", code, r.errs.String())
	}
}

// TestSubResetAcrossRestartInMemory restarts a node that keeps topics in
// memory: its history is gone and the topic has a new epoch, so sub
// prints the server's reset, then the publications of the new epoch.
func TestSubResetAcrossRestartInMemory(t *testing.T) {
	a := servertest.Start(t, server.Config{APIKey: testAPIKey})
	const topic = "restart.mem"
	r := startSub(t, "--tcp", "--tcp-addr", a.Srv.TCPAddr(), "--backoff-max", "200ms", "-n", "3", topic)
	start := r.until(t, "subscribed")
	old := start[len(start)-1].E
	pubHTTP(t, a.HTTPURL(), topic, `"a"`, false)
	pubHTTP(t, a.HTTPURL(), topic, `"b"`, false)
	checkKinds(t, "before the restart", append(start, r.until(t, "pub")[0], r.until(t, "pub")[0]),
		"subscribed 0", `pub 1 "a"`, `pub 2 "b"`)

	a.Restart()
	back := r.until(t, "reset")
	if l := back[len(back)-1]; l.E == old || l.E == "" || l.T != topic {
		t.Fatalf("reset %+v, want %s in a new epoch (not %s)", l, topic, old)
	}
	checkKinds(t, "after the restart", back, "reset 0")
	if p := pubHTTP(t, a.HTTPURL(), topic, `"c"`, false); p.E != back[len(back)-1].E || p.S != 1 {
		t.Fatalf("published at %+v, want s 1 of the reset's epoch", p)
	}
	checkKinds(t, "new epoch", r.until(t, "pub"), `pub 1 "c"`)
	if code := r.exit(t); code != 0 {
		t.Fatalf("exit %d after -n 3, want 0; stderr %q", code, r.errs.String())
	}
}

// TestSubNoReconnect: with --reconnect=false the end of the connection
// ends sub with exit 1 and one line saying why, as before sub reconnected.
func TestSubNoReconnect(t *testing.T) {
	a := servertest.Start(t, server.Config{APIKey: testAPIKey})
	r := startSub(t, "--url", a.WSURL(), "--reconnect=false", "noreconnect.a")
	r.until(t, "subscribed")
	a.Stop()
	if code := r.exit(t); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	// Nothing more was printed: the connection's end is the error.
	if l, ok := <-r.lines; ok {
		t.Fatalf("line %q after the server stopped", l)
	}
	if got := r.errs.String(); !strings.HasPrefix(got, "tickfan sub: ") || strings.Count(got, "\n") != 1 {
		t.Fatalf("stderr %q, want one line saying why sub ended", got)
	}
}
