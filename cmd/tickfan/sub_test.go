package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tickfan/tickfan/client"
	"github.com/tickfan/tickfan/internal/servertest"
	"github.com/tickfan/tickfan/server"
)

const (
	testSecret = "x"
	testAPIKey = "k"
	// waitFor bounds every wait of these tests.
	waitFor = 5 * time.Second
)

// testServer is a real server on loopback ports the OS picks, with HS256
// tokens and HTTP publishing.
type testServer struct {
	srv *server.Server
}

func startServer(t *testing.T) *testServer {
	t.Helper()
	n := servertest.Start(t, server.Config{APIKey: testAPIKey, JWTSecret: testSecret})
	return &testServer{srv: n.Srv}
}

func (s *testServer) wsURL() string { return "ws://" + s.srv.WSAddr() + "/ws" }

// publish runs tickfan pub and returns the answer's epoch.
func (s *testServer) publish(t *testing.T, topic, data string, snap bool) string {
	t.Helper()
	return pubHTTP(t, "http://"+s.srv.HTTPAddr(), topic, data, snap).E
}

// pubHTTP runs tickfan pub against the HTTP API at base and returns the
// position the server gave the publication.
func pubHTTP(t *testing.T, base, topic, data string, snap bool) client.Position {
	t.Helper()
	args := []string{"pub", "--http", base, "--api-key", testAPIKey}
	if snap {
		args = append(args, "--snap")
	}
	code, stdout, stderr := runBounded(t, append(args, topic, data))
	if code != 0 {
		t.Fatalf("tickfan pub %s: exit %d, %s", topic, code, stderr)
	}
	var pos client.Position
	if err := json.Unmarshal([]byte(stdout), &pos); err != nil || pos.E == "" {
		t.Fatalf("tickfan pub answered %q, want {\"e\":..,\"s\":..}", stdout)
	}
	return pos
}

// subRun is a tickfan sub running in the background.
type subRun struct {
	lines chan string // stdout, line by line
	done  chan int    // the exit code
	errs  *syncBuffer // stderr
}

// startSub runs tickfan sub with args; the test fails if it has not ended
// by the end of the test plus waitFor.
func startSub(t *testing.T, args ...string) *subRun {
	t.Helper()
	pr, pw := io.Pipe()
	r := &subRun{lines: make(chan string, 100), done: make(chan int, 1), errs: &syncBuffer{}}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			r.lines <- sc.Text()
		}
		close(r.lines)
	}()
	go func() {
		code := run(append([]string{"sub"}, args...), pw, r.errs)
		pw.Close()
		r.done <- code
	}()
	return r
}

// expect reads the next lines sub printed and fails unless they are want.
func (r *subRun) expect(t *testing.T, want ...string) {
	t.Helper()
	for _, w := range want {
		if l := r.line(t); l != w {
			t.Fatalf("line %q, want %s", l, w)
		}
	}
}

// line returns the next line sub printed.
func (r *subRun) line(t *testing.T) string {
	t.Helper()
	select {
	case l, ok := <-r.lines:
		if !ok {
			t.Fatalf("sub ended without the line expected; stderr %q", r.errs.String())
		}
		return l
	case <-time.After(waitFor):
		t.Fatalf("no line from sub within %s; stderr %q", waitFor, r.errs.String())
		return ""
	}
}

// skipConnected reads the line a connection starts with, and fails the
// test if it is another.
func (r *subRun) skipConnected(t *testing.T) {
	t.Helper()
	if l := r.line(t); !strings.HasPrefix(l, `{"event":"connected",`) {
		t.Fatalf("line %q, want connected", l)
	}
}

// exit waits for sub to end and returns its exit code.
func (r *subRun) exit(t *testing.T) int {
	t.Helper()
	select {
	case code := <-r.done:
		return code
	case <-time.After(waitFor):
		t.Fatalf("sub still running after %s; stderr %q", waitFor, r.errs.String())
		return 0
	}
}

// mint runs tickfan token and returns the token.
func mint(t *testing.T, args ...string) string {
	t.Helper()
	code, stdout, stderr := runBounded(t, append([]string{"token"}, args...))
	if code != 0 {
		t.Fatalf("tickfan token %q: exit %d, %s", args, code, stderr)
	}
	return strings.TrimSpace(stdout)
}

// TestSubErrorReplyEnds checks sub exits 1 with the server's code and
// message when its sub or auth is refused, instead of waiting forever.
func TestSubErrorReplyEnds(t *testing.T) {
	s := startServer(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"private without token", []string{"--url", s.wsURL(), "priv.orders.42"}, "sub refused: 401"},
		{"private without token over tcp", []string{"--tcp", "--tcp-addr", s.srv.TCPAddr(), "priv.orders.42"}, "sub refused: 401"},
		{"another user's topic", []string{"--url", s.wsURL(), "--token", mint(t, "--secret", testSecret, "--sub", "43"), "priv.orders.42"}, "sub refused: 403"},
		{"bad token", []string{"--url", s.wsURL(), "--token", "nonsense", "a"}, "auth refused: 401"},
		{"token of another secret", []string{"--url", s.wsURL(), "--msgpack", "--token", mint(t, "--secret", "other", "--sub", "42"), "a"}, "auth refused: 401"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := startSub(t, tc.args...)
			if code := r.exit(t); code != 1 {
				t.Fatalf("exit %d, want 1; stderr %q", code, r.errs.String())
			}
			if got := r.errs.String(); !strings.Contains(got, tc.want) || strings.Count(got, "\n") != 1 {
				t.Fatalf("stderr %q, want one line with %q", got, tc.want)
			}
		})
	}
}

// TestSubWithToken subscribes to a private topic with a token minted by
// tickfan token and gets a publication made after the sub reply.
func TestSubWithToken(t *testing.T) {
	s := startServer(t)
	tok := mint(t, "--secret", testSecret, "--sub", "42")
	for _, tr := range []struct {
		name string
		args []string
	}{
		{"ws-json", []string{"--url", s.wsURL()}},
		{"ws-msgpack", []string{"--url", s.wsURL(), "--msgpack"}},
		{"tcp", []string{"--tcp", "--tcp-addr", s.srv.TCPAddr()}},
	} {
		t.Run(tr.name, func(t *testing.T) {
			r := startSub(t, append(tr.args, "--token", tok, "-n", "1", "priv.orders.42")...)
			if l := r.line(t); !strings.Contains(l, `"event":"connected"`) || !strings.Contains(l, `"user":"42"`) || !strings.Contains(l, `"exp":`) {
				t.Fatalf("first line %q, want connected as user 42, with the token's expiry", l)
			}
			if l := r.line(t); !strings.HasPrefix(l, `{"event":"subscribed","t":"priv.orders.42","e":"`) {
				t.Fatalf("second line %q, want subscribed to priv.orders.42", l)
			}
			s.publish(t, "priv.orders.42", `{"fill":"`+tr.name+`"}`, false)
			l := r.line(t)
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil || m["t"] != "priv.orders.42" ||
				!strings.Contains(l, `"d":{"fill":"`+tr.name+`"}`) {
				t.Fatalf("line %q, want the publication as JSON", l)
			}
			if code := r.exit(t); code != 0 {
				t.Fatalf("exit %d after -n 1, want 0; stderr %q", code, r.errs.String())
			}
		})
	}
}

// TestSubTokenFile: with --token-file, sub reads the token again before
// it expires and sends it as refresh, so a file renewed by something else
// keeps it connected past the first token's expiry (no 4002, no
// reconnect); the server would close a connection whose token expired.
func TestSubTokenFile(t *testing.T) {
	s := startServer(t)
	file := filepath.Join(t.TempDir(), "token")
	write := func(tok string) {
		if err := os.WriteFile(file+".new", []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(file+".new", file); err != nil {
			t.Fatal(err)
		}
	}
	write(mint(t, "--secret", testSecret, "--sub", "42", "--exp", "3s"))
	r := startSub(t, "--tcp", "--tcp-addr", s.srv.TCPAddr(), "--token-file", file, "-n", "1", "priv.orders.42")
	if l := r.line(t); !strings.Contains(l, `"event":"connected"`) || !strings.Contains(l, `"user":"42"`) {
		t.Fatalf("first line %q, want connected as user 42", l)
	}
	if l := r.line(t); !strings.HasPrefix(l, `{"event":"subscribed","t":"priv.orders.42"`) {
		t.Fatalf("second line %q, want subscribed", l)
	}
	write(mint(t, "--secret", testSecret, "--sub", "42", "--exp", "1m"))
	time.Sleep(4 * time.Second) // past the first token's expiry
	s.publish(t, "priv.orders.42", `{"fill":1}`, false)
	if l := r.line(t); !strings.HasPrefix(l, `{"t":"priv.orders.42","s":1,`) {
		t.Fatalf("line %q after the first token expired, want the publication on the same connection", l)
	}
	if code := r.exit(t); code != 0 {
		t.Fatalf("exit %d, want 0; stderr %q", code, r.errs.String())
	}

	code, _, stderr := runBounded(t, []string{"sub", "--token-file", filepath.Join(t.TempDir(), "none"), "x"})
	if code != 2 || !strings.Contains(stderr, "--token-file") {
		t.Fatalf("a missing token file: exit %d, %q; want 2 naming --token-file", code, stderr)
	}
}

// TestSubSince resumes a topic from a position given with --since.
func TestSubSince(t *testing.T) {
	s := startServer(t)
	e := s.publish(t, "since.a", `1`, false)
	s.publish(t, "since.a", `2`, false)
	s.publish(t, "since.a", `3`, false)
	r := startSub(t, "--tcp", "--tcp-addr", s.srv.TCPAddr(), "--since", "since.a="+e+":1", "-n", "2", "since.a", "since.b")
	r.skipConnected(t)
	r.expect(t,
		`{"event":"recovered","t":"since.a","e":"`+e+`","from":1,"missed":2,"gap":false}`,
		`{"event":"subscribed","t":"since.b","e":"`+e+`","s":0}`,
		`{"t":"since.a","s":2,"d":2}`,
		`{"t":"since.a","s":3,"d":3}`,
	)
	if code := r.exit(t); code != 0 {
		t.Fatalf("exit %d, want 0; stderr %q", code, r.errs.String())
	}
}

// TestSubSinceFromEnv: TICKFAN_SINCE holds several positions separated by
// commas, as the environment gives a repeatable flag; each topic resumes
// from its own (before, the value was read as one position of the first
// topic with an epoch holding the rest).
func TestSubSinceFromEnv(t *testing.T) {
	s := startServer(t)
	e := s.publish(t, "env.a", `1`, false)
	s.publish(t, "env.a", `2`, false)
	s.publish(t, "env.b", `1`, false)
	s.publish(t, "env.b", `2`, false)
	t.Setenv("TICKFAN_SINCE", "env.a="+e+":1, env.b="+e+":2")
	r := startSub(t, "--tcp", "--tcp-addr", s.srv.TCPAddr(), "-n", "1", "env.a", "env.b")
	r.skipConnected(t)
	r.expect(t,
		`{"event":"recovered","t":"env.a","e":"`+e+`","from":1,"missed":1,"gap":false}`,
		`{"event":"recovered","t":"env.b","e":"`+e+`","from":2,"missed":0,"gap":false}`,
		`{"t":"env.a","s":2,"d":2}`,
	)
	if code := r.exit(t); code != 0 {
		t.Fatalf("exit %d, want 0; stderr %q", code, r.errs.String())
	}
}

func TestToken(t *testing.T) {
	parse := func(t *testing.T, tok, secret string) jwt.MapClaims {
		t.Helper()
		claims := jwt.MapClaims{}
		_, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return []byte(secret), nil },
			jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired())
		if err != nil {
			t.Fatalf("minted token %q: %v", tok, err)
		}
		return claims
	}
	c := parse(t, mint(t, "--secret", "s1", "--sub", "7", "--exp", "2m", "--topics", "priv.desk.*, priv.risk.>", "--pub", "orders.7"), "s1")
	exp, _ := c.GetExpirationTime()
	if c["sub"] != "7" || exp == nil || time.Until(exp.Time) > 2*time.Minute || time.Until(exp.Time) < time.Minute {
		t.Errorf("claims %v, want sub 7 and exp in 2m", c)
	}
	if got := fmt.Sprint(c["topics"], c["pub"]); got != "[priv.desk.* priv.risk.>] [orders.7]" {
		t.Errorf("topics and pub claims %s, want [priv.desk.* priv.risk.>] [orders.7]", got)
	}
	if c := parse(t, mint(t, "--secret", "s1"), "s1"); c["sub"] != "user" || c["topics"] != nil || c["pub"] != nil {
		t.Errorf("default claims %v, want sub user and no topics or pub", c)
	}

	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte("from-file\nignored\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	parse(t, mint(t, "--secret", "s1", "--secret-file", file), "from-file")
	t.Setenv("TICKFAN_SECRET", "from-env")
	parse(t, mint(t), "from-env")
	t.Setenv("TICKFAN_SECRET", "")

	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "--secret, --secret-file or TICKFAN_SECRET is needed"},
		{[]string{"--secret", "s", "--exp", "0s"}, "--exp 0s: must be more than 0"},
		{[]string{"--secret", "s", "--exp", "60"}, `--exp "60": a duration needs a unit, e.g. 60s`},
		{[]string{"--secret", "s", "--topics", "a..b"}, `--topics "a..b"`},
		{[]string{"--secret", "s", "--pub", "a.>.b"}, `--pub "a.>.b"`},
		{[]string{"--secret", "s", "--sub", ""}, `--sub "": the token needs a user id`},
		{[]string{"--secret-file", "/nonexistent/secret"}, "--secret-file"},
	} {
		code, _, stderr := runBounded(t, append([]string{"token"}, tc.args...))
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("token %q: exit %d, %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
}

func TestVersionText(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.99", Main: debug.Module{Path: "github.com/tickfan/tickfan", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.modified", Value: "true"}, {Key: "vcs.time", Value: "2026-01-02T03:04:05Z"}}}
	got := versionText(bi, true)
	for _, want := range []string{"tickfan v1.2.3\n", "abc123 (modified", "2026-01-02T03:04:05Z", "go1.99"} {
		if !strings.Contains(got, want) {
			t.Errorf("version text %q, want %q in it", got, want)
		}
	}
}
