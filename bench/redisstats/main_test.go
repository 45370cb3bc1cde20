package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tickfan/tickfan/bench"
)

func TestParseRedisInfo(t *testing.T) {
	const info = "# CPU\r\nused_cpu_sys:0.041471\r\nused_cpu_user:0.040556\r\nused_cpu_sys_children:0.000000\r\n" +
		"used_cpu_user_children:0.000000\r\nused_cpu_sys_main_thread:0.043103\r\nused_cpu_user_main_thread:0.038793\r\n\r\n" +
		"# Commandstats\r\ncmdstat_evalsha:calls=12,usec=4936,usec_per_call=411.33,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_config|resetstat:calls=1,usec=45,usec_per_call=45.00,rejected_calls=0,failed_calls=0\r\n"
	got, err := parseRedisInfo(info)
	if err != nil {
		t.Fatal(err)
	}
	if d := got.cpu - 0.082027; d > 1e-9 || d < -1e-9 {
		t.Errorf("cpu %v", got.cpu)
	}
	if d := got.mainCPU - 0.081896; d > 1e-9 || d < -1e-9 {
		t.Errorf("main thread cpu %v", got.mainCPU)
	}
	if got.calls["evalsha"] != 12 || got.calls["config|resetstat"] != 1 {
		t.Errorf("calls %v", got.calls)
	}
	if _, err := parseRedisInfo("# Commandstats\r\n"); err == nil {
		t.Error("INFO without cpu: no error")
	}
}

func TestParseCoreIdle(t *testing.T) {
	const stat = "cpu  1 2 3 4 5 6 7 8 9 10\ncpu0 100 0 50 900 10 0 20 5 0 0\ncpu1 1 1 1 1 1 1 1 1 0 0\n"
	got, err := parseCoreIdle(stat, []int{0})
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != 9.1 { // (900+10)/100
		t.Errorf("cpu0 idle %v s, want 9.1", got[0])
	}
	if _, err := parseCoreIdle(stat, []int{2}); err == nil {
		t.Error("missing cpu2: no error")
	}
}

func TestWindowCoreBusy(t *testing.T) {
	s := &sampler{}
	t0 := time.Now()
	a := &snapshot{at: t0, cores: map[int]float64{0: 100}}
	b := &snapshot{at: t0.Add(10 * time.Second), cores: map[int]float64{0: 106}}
	if w := s.window(a, b); w.Cores["0"] != 4 {
		t.Errorf("busy %v s of 10 with 6 idle, want 4", w.Cores["0"])
	}
}

func TestWindowLeavesOutInfoAndConfig(t *testing.T) {
	s := &sampler{label: "redis/fixed-1", pids: []int{7, 5}}
	a := &snapshot{redis: &redisInfo{cpu: 1, mainCPU: 0.5, calls: map[string]int64{"evalsha": 10, "info": 3}}, pubs: 100, pubsOK: true,
		pidCPU: map[int]time.Duration{7: time.Second, 5: time.Second}}
	b := &snapshot{redis: &redisInfo{cpu: 1.5, mainCPU: 0.9, calls: map[string]int64{"evalsha": 20, "publish": 10, "info": 4, "config|resetstat": 1}}, pubs: 110, pubsOK: true,
		pidCPU: map[int]time.Duration{7: 3 * time.Second}}
	w := s.window(a, b)
	if len(w.NodeCPUS) != 2 || w.NodeCPUS[0] == nil || *w.NodeCPUS[0] != 2 || w.NodeCPUS[1] != nil || w.TickfanCPUS != 2 {
		t.Errorf("node cpu %v, total %v", w.NodeCPUS, w.TickfanCPUS)
	}
	if _, err := json.Marshal(w); err != nil {
		t.Error(err)
	}
	if w.Redis.Calls != 20 || w.Redis.Commands["evalsha"] != 10 || w.Redis.Commands["publish"] != 10 {
		t.Errorf("redis window %+v", w.Redis)
	}
	if *w.Publications != 10 || w.Index != 0 || s.index != 1 {
		t.Errorf("window %+v", w)
	}
}

func TestTable(t *testing.T) {
	dir := t.TempDir()
	results := filepath.Join(dir, "results.jsonl")
	windows := filepath.Join(dir, "windows.jsonl")
	var rb bytes.Buffer
	mk := func(label, scenario string, step int, rate float64, p50, p99 int64, keeps bool) {
		r := bench.Result{Label: label, Scenario: scenario, Step: step, WindowS: 10, KeepsUp: keeps,
			Params: bench.Params{Conns: 10, Topics: 1, Rate: rate}, DeliveriesPerS: rate * 10,
			Expected: 10, Received: 10}
		r.Latency.P50, r.Latency.P99, r.Latency.Count = p50, p99, 1
		if err := bench.Emit(&rb, r); err != nil {
			t.Fatal(err)
		}
	}
	mk("memory/fixed-1", "fanout", 0, 10000, 100, 1000, true)
	mk("redis/fixed-1", "fanout", 0, 10000, 300, 3000, true)
	mk("redis/saturate", "saturate", 1, 10000, 300, 3000, true)
	mk("redis/saturate", "saturate", 2, 20000, 300, 3000, false)
	if err := os.WriteFile(results, rb.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	ws := `{"label":"memory/fixed-1","index":0,"wall_s":10,"publications":100000,"tickfan_cpu_s":2,"core_busy_s":{"0":3}}
{"label":"redis/fixed-1","index":0,"wall_s":10,"publications":100000,"tickfan_cpu_s":4,"node_cpu_s":[3,1],"redis":{"cpu_s":1,"main_thread_cpu_s":0.9,"calls":600000,"commands":{"evalsha":100000}},"core_busy_s":{"0":6}}
{"label":"redis/saturate","index":0,"wall_s":5,"publications":50000,"tickfan_cpu_s":2,"redis":{"cpu_s":0.5,"main_thread_cpu_s":0.4,"calls":300000,"commands":{"evalsha":50000}}}
`
	if err := os.WriteFile(windows, []byte(ws), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := tableCmd([]string{"-results", results, "-windows", windows}, &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"| memory | fixed-1 | 10000 | 10000 | yes | 100 | 1000 | 20.0 | - | - | - | 30 (10) |",
		"| redis | fixed-1 | 10000 | 10000 | yes | 300 | 3000 | 40.0 (30.0 + 10.0) | 10.0 | 6.00 (1.00) | 10 (9) | 60 (10) |",
		"| redis | saturate step 2 | 20000 | 20000 | no (stats: no window recorded) |",
		"| fixed rate: p99 µs | 1000 | 3000 | 3.00 |",
		"| fixed rate: tickfan + Redis CPU µs/pub | 20.0 | 50.0 | 2.50 |",
		"| saturate: highest rate kept up, pubs/s | - | 10000 | - |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
}

func TestKeptUpFellBehind(t *testing.T) {
	x := row{r: bench.Result{KeepsUp: true, Expected: 5, Received: 5}, offered: 20000, delivered: 15000}
	if sustained(x) {
		t.Error("75% delivered in the window: sustained")
	}
	if got, want := keptUp(x), "no (fell behind: 75% delivered in the window)"; got != want {
		t.Errorf("keptUp %q, want %q", got, want)
	}
	x.delivered = 19900
	if !sustained(x) || keptUp(x) != "yes" {
		t.Errorf("99.5%% delivered: %q", keptUp(x))
	}
}
