package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tickfan/tickfan/bench"
)

func TestBenchVersus(t *testing.T) {
	path := filepath.Join(t.TempDir(), "results.jsonl")
	var lines bytes.Buffer
	for _, target := range []string{"tickfan", "centrifugo"} {
		v := bench.Versus{Target: target, Publish: "http"}
		v.Latency.P50 = 7000
		if err := bench.EmitVersus(&lines, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(path, lines.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if err := benchCmd([]string{"versus", "-in", path}, &out, &errOut); err != nil {
		t.Fatal(err, errOut.String())
	}
	if !strings.Contains(out.String(), "| centrifugo |") || !strings.Contains(out.String(), "p50 from due 1.00") {
		t.Errorf("table:\n%s", out.String())
	}
	if err := benchCmd([]string{"versus"}, &out, &errOut); err == nil {
		t.Errorf("no -in: no error")
	}
}
