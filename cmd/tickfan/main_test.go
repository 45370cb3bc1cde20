package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tickfan/tickfan/server"
)

func TestRunCommands(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{nil, 2, "usage: tickfan"},
		{[]string{"help"}, 0, "usage: tickfan"},
		{[]string{"help"}, 0, "token"},
		{[]string{"help"}, 0, "TICKFAN_<FLAG>"},
		{[]string{"nope"}, 2, `unknown command "nope"`},
		{[]string{"serve", "extra"}, 2, "unexpected arguments"},
		{[]string{"sub"}, 2, "name at least one topic"},
		{[]string{"sub", "trade.X", "--msgpack"}, 2, `topic "--msgpack" looks like a flag: flags go before topics`},
		{[]string{"sub", "a", "-n", "1"}, 2, `topic "-n" looks like a flag`},
		{[]string{"sub", "-n", "-1", "a"}, 2, "-n -1: must be 0"},
		{[]string{"sub", "-n", "x", "a"}, 2, `-n "x": not a whole number`},
		{[]string{"sub", "--since", "a", "a"}, 2, `--since "a": want topic=epoch:seq`},
		{[]string{"sub", "--since", "a=e:x", "a"}, 2, `--since "a=e:x": seq "x"`},
		{[]string{"sub", "--since", "b=e:1", "a"}, 2, `--since b: "b" is not among the topics`},
		{[]string{"sub", "--url", "ws://127.0.0.1:1/ws", "bad name"}, 2, `"bad name": bad topic name`},
		{[]string{"sub", "--conflate", "a..b", "a"}, 2, "conflate patterns"},
		{[]string{"sub", "--server-idle", "0s", "a"}, 2, "--server-idle 0s: must be more than 0"},
		{[]string{"sub", "--backoff-max", "-1s", "a"}, 2, "--backoff-max -1s: must be more than 0"},
		{[]string{"pub", "t"}, 2, "usage: tickfan pub"},
		{[]string{"pub", "t", "{not json"}, 2, "is not JSON"},
		{[]string{"version", "x"}, 2, "unexpected arguments"},
	} {
		var out, errOut bytes.Buffer
		code := run(tc.args, &out, &errOut)
		if code != tc.code || !strings.Contains(out.String()+errOut.String(), tc.out) {
			t.Errorf("tickfan %q: exit %d, output %q; want exit %d and %q", tc.args, code, out.String()+errOut.String(), tc.code, tc.out)
		}
	}
}

// loopback puts every listener of serve on a port the OS picks, so that a
// case that wrongly starts the server binds nothing anyone else uses.
var loopback = []string{"--ws-addr", "127.0.0.1:0", "--tcp-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"}

// TestServeBadFlags checks that every bad flag of serve is refused before
// the server binds a port, with exit 2 and one line naming the flag and
// what it takes.
func TestServeBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--ws-path", "ws"}, `--ws-path "ws": must start with /`},
		{[]string{"--ws-path", ""}, `--ws-path "": must start with /`},
		{[]string{"--history-size", "0"}, "--history-size 0: must be at least 1"},
		{[]string{"--history-size", "-5"}, "--history-size -5: must be at least 1"},
		{[]string{"--max-frame", "-1"}, "--max-frame -1: must be at least 1"},
		{[]string{"--max-frame", "0"}, "--max-frame 0: must be at least 1"},
		{[]string{"--max-frame", "x"}, `--max-frame "x": not a whole number`},
		{[]string{"--max-frame", "99999999999999999999"}, `--max-frame "99999999999999999999": out of range`},
		{[]string{"--loops", "-3"}, "--loops -3: must be 0 (one per CPU) or more"},
		{[]string{"--max-conns", "-1"}, "--max-conns -1: must be 0"},
		{[]string{"--pub-rate", "-1"}, "--pub-rate -1: must be 0"},
		{[]string{"--cmd-rate", "0"}, "--cmd-rate 0: must be at least 1"},
		{[]string{"--max-subs", "0"}, "--max-subs 0: must be at least 1"},
		{[]string{"--max-body", "-1"}, "--max-body -1: must be at least 1"},
		{[]string{"--max-batch", "0"}, "--max-batch 0: must be at least 1"},
		{[]string{"--outbox-bytes", "0"}, "--outbox-bytes 0: must be at least 1"},
		{[]string{"--outbox-msgs", "-1"}, "--outbox-msgs -1: must be at least 1"},
		{[]string{"--conflate", ""}, `--conflate "": give patterns, or - for none`},
		{[]string{"--conflate", "a..b"}, "--conflate"},
		{[]string{"--anonymous-pub", "a.>.b"}, "--anonymous-pub"},
		{[]string{"--heartbeat", "5"}, `--heartbeat "5": a duration needs a unit, e.g. 5s`},
		{[]string{"--heartbeat=0.5"}, `--heartbeat "0.5": a duration needs a unit, e.g. 0.5s`},
		{[]string{"--heartbeat", "0"}, "--heartbeat 0s: must be more than 0"},
		{[]string{"--idle-timeout", "0s"}, "--idle-timeout 0s: must be more than 0"},
		{[]string{"--handshake-timeout", "-1s"}, "--handshake-timeout -1s: must be more than 0"},
		{[]string{"--slow-timeout", "soon"}, `--slow-timeout "soon": not a duration`},
		{[]string{"--drain-timeout", "0ms"}, "--drain-timeout 0s: must be more than 0"},
		{[]string{"--demo-tick", "0s"}, "--demo-tick 0s: must be more than 0"},
		{[]string{"--ws-addr", "8080"}, `--ws-addr "8080": want host:port`},
		{[]string{"--tcp-addr", ""}, `--tcp-addr "": want host:port`},
		{[]string{"--http-addr", "localhost"}, `--http-addr "localhost": want host:port`},
		{[]string{"--http-addr", ":99999"}, `--http-addr ":99999": port "99999"`},
		{[]string{"--debug-addr", "6060"}, `--debug-addr "6060": want host:port`},
		{[]string{"--engine", "fast"}, `--engine "fast": want one of gnet, evio, std`},
		{[]string{"--engine", ""}, `--engine "": want one of gnet, evio, std`},
		{[]string{"--log-level", "loud"}, `--log-level "loud": want debug, info, warn or error`},
		{[]string{"--allowed-origins", "example.com"}, `--allowed-origins "example.com": not an origin`},
		{[]string{"--require-auth=maybe"}, `--require-auth "maybe": want true or false`},
		{[]string{"--demo", "--require-auth", "--history-size", "0"}, "--history-size 0: must be at least 1"},
		{[]string{"--api-key-file", "/nonexistent/key"}, "--api-key-file /nonexistent/key: no such file"},
		{[]string{"--jwt-key", "/nonexistent/key.pem"}, "--jwt-key /nonexistent/key.pem: no such file"},
		{[]string{"--nope"}, "flag provided but not defined: -nope"},
		{[]string{"--heartbeat"}, "flag needs an argument: -heartbeat"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			// The flag under test comes last and wins over loopback.
			args := append(append([]string{"serve"}, loopback...), tc.args...)
			code, stdout, stderr := runBounded(t, args)
			if code != 2 {
				t.Fatalf("exit %d, want 2; stderr %q", code, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			if !strings.HasPrefix(stderr, "tickfan serve: ") || strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") {
				t.Errorf("stderr %q, want one line \"tickfan serve: ...\"", stderr)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr %q, want %q", stderr, tc.want)
			}
		})
	}
}

// runBounded runs tickfan with args and fails the test if it has not ended
// within a few seconds: a serve that starts where it should refuse never
// ends by itself.
func runBounded(t *testing.T, args []string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(args, &out, &errOut) }()
	select {
	case code = <-done:
		return code, out.String(), errOut.String()
	case <-time.After(5 * time.Second):
		t.Fatalf("tickfan %q still running after 5s (stderr %q): it should have ended", args, errOut.String())
		return 0, "", ""
	}
}

func TestServeBadEnvironment(t *testing.T) {
	t.Setenv("TICKFAN_HEARTBEAT", "5")
	code, _, stderr := runBounded(t, append([]string{"serve"}, loopback...))
	want := `TICKFAN_HEARTBEAT="5" (--heartbeat): a duration needs a unit, e.g. 5s`
	if code != 2 || !strings.Contains(stderr, want) || strings.Count(stderr, "\n") != 1 {
		t.Fatalf("exit %d, stderr %q; want 2 and one line with %q", code, stderr, want)
	}
}

// TestServeHelpNamesEnvironment checks serve -h lists each flag with its
// TICKFAN_ variable and explains the rule.
func TestServeHelpNamesEnvironment(t *testing.T) {
	for _, h := range []string{"-h", "--help"} {
		code, stdout, stderr := runBounded(t, []string{"serve", h})
		out := stdout + stderr
		if code != 0 {
			t.Fatalf("serve %s: exit %d, want 0", h, code)
		}
		if !strings.Contains(out, "TICKFAN_<FLAG>") {
			t.Errorf("serve %s: no word of TICKFAN_<FLAG> in %q", h, out)
		}
		flags := regexp.MustCompile(`(?m)^  -([a-z-]+)`).FindAllStringSubmatch(out, -1)
		if len(flags) < 30 {
			t.Fatalf("serve %s lists %d flags, want every flag of serve:\n%s", h, len(flags), out)
		}
		for _, f := range flags {
			if env := envName(f[1]); !strings.Contains(out, "(env "+env+")") {
				t.Errorf("serve %s: flag --%s without its variable %s", h, f[1], env)
			}
		}
		if !strings.Contains(out, "TICKFAN_HISTORY_SIZE") || !strings.Contains(out, "TICKFAN_WS_ADDR") {
			t.Errorf("serve %s: TICKFAN_HISTORY_SIZE or TICKFAN_WS_ADDR missing", h)
		}
	}
}

func TestFlagsFromEnvironment(t *testing.T) {
	t.Setenv("TICKFAN_API_KEY", "from-env")
	t.Setenv("TICKFAN_MAX_FRAME", "42")
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	key := fs.String("api-key", "", "")
	maxFrame := fs.Int("max-frame", 1, "")
	if err := parseFlags(fs, []string{"--max-frame", "7"}); err != nil {
		t.Fatal(err)
	}
	if *key != "from-env" {
		t.Errorf("api-key %q, want it from TICKFAN_API_KEY", *key)
	}
	if *maxFrame != 7 {
		t.Errorf("max-frame %d: the command line must win over TICKFAN_MAX_FRAME", *maxFrame)
	}
	t.Setenv("TICKFAN_MAX_FRAME", "lots")
	fs = flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Int("max-frame", 1, "")
	if err := parseFlags(fs, nil); err == nil || !strings.Contains(err.Error(), "TICKFAN_MAX_FRAME") {
		t.Errorf("bad environment value: err %v, want one naming TICKFAN_MAX_FRAME", err)
	}
}

// TestServeFlagDefaults checks that each flag of serve that sets a field of
// server.Config defaults to that field of server.DefaultConfig, so that
// --help shows the default the server uses, and that every field has a
// flag or is listed as having none.
func TestServeFlagDefaults(t *testing.T) {
	// Not server settings, so not in server.Config.
	ownFlags := map[string]bool{"demo": true, "demo-tick": true, "log-level": true}
	// Fields a program using package server may set that serve does not offer.
	noFlag := map[string]bool{"MaxPull": true, "HTTPReadTimeout": true, "HTTPIdleTimeout": true, "WheelTick": true, "Logger": true}

	fs, f := newServeFlags(io.Discard)
	cfg, def := reflect.ValueOf(&f.cfg).Elem(), reflect.ValueOf(server.DefaultConfig())
	byAddr := map[uintptr]int{} // a field's address to its index
	for i := range cfg.NumField() {
		byAddr[cfg.Field(i).Addr().Pointer()] = i
	}
	flagOf := map[string]string{}
	fs.VisitAll(func(fl *flag.Flag) {
		i, ok := byAddr[reflect.ValueOf(fl.Value).Pointer()]
		if !ok {
			if !ownFlags[fl.Name] {
				t.Errorf("--%s sets no field of server.Config", fl.Name)
			}
			return
		}
		field := cfg.Type().Field(i).Name
		flagOf[field] = fl.Name
		want := fmt.Sprint(def.Field(i).Interface())
		if list, ok := def.Field(i).Interface().([]string); ok {
			want = strings.Join(list, ",") // a repeatable flag
		}
		if _, ok := fl.Value.(*offFlag); ok {
			want = fmt.Sprint(!def.Field(i).Bool()) // --status-page sets StatusPageOff
		}
		if fl.DefValue != want {
			t.Errorf("--%s defaults to %q, server.DefaultConfig().%s is %q", fl.Name, fl.DefValue, field, want)
		}
	})
	for i := range cfg.NumField() {
		field := cfg.Type().Field(i).Name
		if _, ok := flagOf[field]; ok == noFlag[field] {
			t.Errorf("server.Config.%s: flag %v, but listed in noFlag %v", field, ok, noFlag[field])
		}
	}
	// Parsed with nothing given, the flags are DefaultConfig exactly.
	if err := parseFlags(fs, nil); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f.cfg, server.DefaultConfig()) {
		t.Errorf("serve with no flags: %+v\nwant server.DefaultConfig() %+v", f.cfg, server.DefaultConfig())
	}
}

// TestServeFlagsFromEnvironment checks that serve's flags still read
// TICKFAN_<FLAG>, including the negative and empty values that mean
// something, and that the command line wins.
func TestServeFlagsFromEnvironment(t *testing.T) {
	t.Setenv("TICKFAN_MAX_CONNS_PER_IP", "-1")
	t.Setenv("TICKFAN_CONFLATE", "-")
	t.Setenv("TICKFAN_HEARTBEAT", "5s")
	t.Setenv("TICKFAN_REQUIRE_AUTH", "true")
	t.Setenv("TICKFAN_MAX_FRAME", "4096")
	t.Setenv("TICKFAN_DEMO_TICK", "1s")
	fs, f := newServeFlags(io.Discard)
	if err := parseFlags(fs, []string{"--max-frame", "8192"}); err != nil {
		t.Fatal(err)
	}
	want := server.DefaultConfig()
	want.MaxConnsPerIP, want.Conflate, want.Heartbeat, want.RequireAuth, want.MaxFrame = -1, "-", 5*time.Second, true, 8192
	if !reflect.DeepEqual(f.cfg, want) || f.demoTick != time.Second {
		t.Errorf("from the environment: %+v, demo tick %v\nwant %+v, 1s", f.cfg, f.demoTick, want)
	}
}

func TestVersion(t *testing.T) {
	code, stdout, _ := runBounded(t, []string{"version"})
	if code != 0 || !strings.HasPrefix(stdout, "tickfan ") || !strings.Contains(stdout, "go ") {
		t.Fatalf("version: exit %d, %q; want 0 and tickfan <version>, with the Go version", code, stdout)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestStatusPageFlag: --status-page (default true) and TICKFAN_STATUS_PAGE
// set server.Config.StatusPageOff the other way round.
func TestStatusPageFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  string
		off  bool
	}{
		{nil, "", false},
		{[]string{"--status-page=false"}, "", true},
		{[]string{"--status-page"}, "false", false},
		{nil, "false", true},
		{nil, "true", false},
	} {
		if tc.env != "" {
			t.Setenv("TICKFAN_STATUS_PAGE", tc.env)
		}
		fs, f := newServeFlags(io.Discard)
		if err := parseFlags(fs, tc.args); err != nil {
			t.Fatalf("%v env %q: %v", tc.args, tc.env, err)
		}
		if f.cfg.StatusPageOff != tc.off {
			t.Errorf("%v env %q: StatusPageOff %v, want %v", tc.args, tc.env, f.cfg.StatusPageOff, tc.off)
		}
	}
	fs, _ := newServeFlags(io.Discard)
	if err := parseFlags(fs, []string{"--status-page=maybe"}); err == nil || !strings.Contains(err.Error(), "want true or false") {
		t.Errorf("--status-page=maybe: %v, want a usage error saying true or false", err)
	}
}
