package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBenchCommands(t *testing.T) {
	dir := t.TempDir()
	results := filepath.Join(dir, "r.jsonl")
	line := `{"label":"after","scenario":"hft","params":{"proto":"tcp","conns":1,"topics":1},` +
		`"latency_us":{"count":9,"p50":60,"p99":300},"latency_sent_us":{"count":9,"p50":35,"p99":120},` +
		`"hft":{"loopback_rtt_us":{"count":9,"p50":18},"echo_rtt_us":{"count":9,"p50":21},"server_ping_rtt_us":{"count":9,"p50":40}}}`
	if err := os.WriteFile(results, []byte(line+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"bench", "-h"}, 0, "tickfan bench echo --listen"},
		{[]string{"bench", "echo", "extra"}, 1, "unexpected arguments"},
		{[]string{"bench", "echo", "--listen", "nohost"}, 1, "bench echo"},
		{[]string{"bench", "--scenario", "hft", "--echo", "nohost", "--quiet"}, 1, `--echo "nohost"`},
		{[]string{"bench", "--scenario", "soak", "--soak-phases", "clean:10s,loss", "--quiet"}, 1, `--soak-phases: soak phase "loss"`},
		{[]string{"bench", "-h"}, 0, "--soak-phases"},
		{[]string{"bench", "report", "-in", results}, 1, "-hft"},
		{[]string{"bench", "report", "-in", results, "-hft"}, 0, "| after | 1 | 18 µs | 21 µs | 40 µs | - | 35µs / 120µs | 60µs / 300µs | unknown |"},
	} {
		var out, errOut bytes.Buffer
		code := run(tc.args, &out, &errOut)
		if code != tc.code || !strings.Contains(out.String()+errOut.String(), tc.out) {
			t.Errorf("tickfan %q: exit %d, output %q; want exit %d and %q", tc.args, code, out.String()+errOut.String(), tc.code, tc.out)
		}
	}
}
