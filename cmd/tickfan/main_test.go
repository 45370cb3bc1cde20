package main

import (
	"bytes"
	"flag"
	"io"
	"strings"
	"testing"
)

func TestRunCommands(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{nil, 2, "usage: tickfan"},
		{[]string{"help"}, 0, "usage: tickfan"},
		{[]string{"nope"}, 2, `unknown command "nope"`},
		{[]string{"serve", "--max-frame", "x"}, 1, "invalid value"},
		{[]string{"serve", "--log-level", "loud"}, 1, "--log-level"},
		{[]string{"serve", "extra"}, 1, "unexpected arguments"},
		{[]string{"serve", "--conflate", "a..b", "--ws-addr", "127.0.0.1:0", "--tcp-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"}, 1, "empty segment"},
		{[]string{"sub"}, 1, "name at least one topic"},
		{[]string{"pub", "t"}, 1, "usage: tickfan pub"},
		{[]string{"pub", "t", "{not json"}, 1, "is not JSON"},
	} {
		var out, errOut bytes.Buffer
		code := run(tc.args, &out, &errOut)
		if code != tc.code || !strings.Contains(out.String()+errOut.String(), tc.out) {
			t.Errorf("tickfan %q: exit %d, output %q; want exit %d and %q", tc.args, code, out.String()+errOut.String(), tc.code, tc.out)
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
