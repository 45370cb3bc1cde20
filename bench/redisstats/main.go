// Command redisstats measures what `tickfan bench` cannot see on its own
// when several tickfan nodes share topics through Redis: the CPU of every
// tickfan process, Redis's CPU and commands, and the busy time of the core
// they share, over exactly the bench's measured windows. scripts/bench-redis
// runs it; it talks to loopback addresses only.
//
//	redisstats serve -listen 127.0.0.1:P -upstream http://127.0.0.1:H -label L -out windows.jsonl \
//	    [-pub-http http://127.0.0.1:H2] [-pids 11,12] [-redis 127.0.0.1:R] [-cpu 0]
//	redisstats table -results results.jsonl -windows windows.jsonl
//
// serve is given to the bench as its --http. The bench reads <http>/metrics
// exactly twice per measured window, at its start and at its end, and
// nothing else; serve answers with the upstream node's /metrics (so the
// bench's own metrics_delta is unchanged) and, on each of those reads,
// first takes a snapshot. Each second snapshot closes a window, written
// as one JSON line (Window) to -out. A window is numbered from 0 within
// its label, in the order of the bench's results of that label (a fixed
// run has one, a saturate run one per step).
//
// table joins the bench's results with the windows by label and number
// and prints the markdown tables of scripts/bench-redis.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: redisstats serve|table [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serveCmd(os.Args[2:])
	case "table":
		err = tableCmd(os.Args[2:], os.Stdout)
	default:
		err = fmt.Errorf("unknown command %q: want serve or table", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "redisstats:", err)
		os.Exit(1)
	}
}

// Window is what happened between two reads of /metrics by the bench.
type Window struct {
	Label string    `json:"label"`
	Index int       `json:"index"`
	Start time.Time `json:"start"`
	// WallS is the time between the two snapshots, s.
	WallS float64 `json:"wall_s"`
	// Publications is the change of tickfan_publications_total on the node
	// the publisher talks to: the pubs it answered in the window.
	Publications *float64 `json:"publications"`
	// TickfanCPUS is utime+stime of every tickfan process together, s;
	// PIDCPUS the same per process id, and NodeCPUS in the order of -pids.
	TickfanCPUS float64            `json:"tickfan_cpu_s"`
	PIDCPUS     map[string]float64 `json:"pid_cpu_s"`
	NodeCPUS    []*float64         `json:"node_cpu_s"` // null: unread
	Redis       *RedisWindow       `json:"redis,omitempty"`
	// Cores is the busy time of each watched CPU, s: the window less the
	// CPU's idle and iowait time in /proc/stat. Those two are measured
	// (with NO_HZ, from idle entry to exit); the busy fields are sampled
	// at ticks and miss the short bursts between idle periods of a
	// loopback server, a large part of its time here. It holds what the
	// processes under test used there, and whatever else the machine ran
	// on it.
	Cores  map[string]float64 `json:"core_busy_s,omitempty"`
	Errors []string           `json:"errors,omitempty"`
}

// RedisWindow is the change of Redis's INFO cpu and commandstats.
type RedisWindow struct {
	// CPUS is used_cpu_sys+used_cpu_user (the whole process), s.
	CPUS float64 `json:"cpu_s"`
	// MainCPUS is the same for the main thread, the one that runs
	// commands: at 100% of the window Redis is the limit.
	MainCPUS float64 `json:"main_thread_cpu_s"`
	// Calls is every command counted in commandstats, the ones Lua ran
	// included, but for INFO (this program's) and CONFIG (the script's
	// RESETSTAT).
	Calls    int64            `json:"calls"`
	Commands map[string]int64 `json:"commands"`
}

type snapshot struct {
	at     time.Time
	pubs   float64
	pubsOK bool
	pidCPU map[int]time.Duration
	redis  *redisInfo
	cores  map[int]float64 // busy seconds
	errs   []string
}

type redisInfo struct {
	cpu, mainCPU float64
	calls        map[string]int64
}

type sampler struct {
	upstream string
	pubHTTP  string
	pids     []int
	redis    string
	cpus     []int
	label    string

	mu    sync.Mutex
	out   io.Writer
	open  *snapshot // the window's start, nil between windows
	index int
}

func serveCmd(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:29507", "`address` to serve /metrics on (give http://<it> to the bench as --http)")
	upstream := fs.String("upstream", "", "the subscribers' node HTTP `url`, whose /metrics is passed on to the bench")
	pubHTTP := fs.String("pub-http", "", "HTTP `url` of the node the publisher talks to, for tickfan_publications_total (default: -upstream)")
	pids := fs.String("pids", "", "tickfan process `ids`, comma separated")
	redis := fs.String("redis", "", "Redis `address` to read INFO from (none: no Redis figures)")
	cpus := fs.String("cpu", "", "CPU `numbers` whose busy time to record, comma separated")
	label := fs.String("label", "", "the bench run's --label")
	out := fs.String("out", "", "windows `file`, JSON lines, appended to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *upstream == "" || *out == "" || *label == "" {
		return errors.New("serve needs -upstream, -label and -out")
	}
	s := &sampler{upstream: strings.TrimRight(*upstream, "/"), pubHTTP: strings.TrimRight(*pubHTTP, "/"), redis: *redis, label: *label}
	if s.pubHTTP == "" {
		s.pubHTTP = s.upstream
	}
	var err error
	if s.pids, err = intList(*pids); err != nil {
		return fmt.Errorf("-pids: %w", err)
	}
	if s.cpus, err = intList(*cpus); err != nil {
		return fmt.Errorf("-cpu: %w", err)
	}
	f, err := os.OpenFile(*out, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	s.out = f

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", s.metrics)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func intList(s string) ([]int, error) {
	var l []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%q is not a number", f)
		}
		l = append(l, n)
	}
	return l, nil
}

// metrics takes a snapshot, closes or opens a window with it, then
// passes the upstream node's /metrics on.
func (s *sampler) metrics(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	snap := s.take(r.Context())
	if s.open == nil {
		s.open = snap
	} else {
		win := s.window(s.open, snap)
		s.open = nil
		b, _ := json.Marshal(win)
		if _, err := s.out.Write(append(b, '\n')); err != nil {
			fmt.Fprintln(os.Stderr, "redisstats:", err)
		}
	}
	s.mu.Unlock()

	resp, err := get(r.Context(), s.upstream+"/metrics")
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

func (s *sampler) take(ctx context.Context) *snapshot {
	snap := &snapshot{at: time.Now(), pidCPU: map[int]time.Duration{}, cores: map[int]float64{}}
	for _, pid := range s.pids {
		cpu, err := procCPU(pid)
		if err != nil {
			snap.errs = append(snap.errs, err.Error())
			continue
		}
		snap.pidCPU[pid] = cpu
	}
	if len(s.cpus) > 0 {
		idle, err := coreIdle(s.cpus)
		if err != nil {
			snap.errs = append(snap.errs, err.Error())
		}
		snap.cores = idle
	}
	if s.redis != "" {
		info, err := readRedisInfo(ctx, s.redis)
		if err != nil {
			snap.errs = append(snap.errs, "redis: "+err.Error())
		}
		snap.redis = info
	}
	if n, err := scrapeCounter(ctx, s.pubHTTP+"/metrics", "tickfan_publications_total"); err != nil {
		snap.errs = append(snap.errs, "publications: "+err.Error())
	} else {
		snap.pubs, snap.pubsOK = n, true
	}
	return snap
}

func (s *sampler) window(a, b *snapshot) Window {
	w := Window{Label: s.label, Index: s.index, Start: a.at.UTC(), WallS: b.at.Sub(a.at).Seconds(), PIDCPUS: map[string]float64{}}
	s.index++
	w.Errors = append(append(w.Errors, a.errs...), b.errs...)
	if a.pubsOK && b.pubsOK {
		d := b.pubs - a.pubs
		w.Publications = &d
	}
	for _, pid := range s.pids {
		c0, ok0 := a.pidCPU[pid]
		c1, ok1 := b.pidCPU[pid]
		if !ok0 || !ok1 {
			w.NodeCPUS = append(w.NodeCPUS, nil)
			continue
		}
		d := (c1 - c0).Seconds()
		w.PIDCPUS[strconv.Itoa(pid)] = d
		w.NodeCPUS = append(w.NodeCPUS, &d)
		w.TickfanCPUS += d
	}
	if len(a.cores) > 0 {
		w.Cores = map[string]float64{}
		for cpu, i0 := range a.cores {
			if i1, ok := b.cores[cpu]; ok {
				w.Cores[strconv.Itoa(cpu)] = max(0, w.WallS-(i1-i0))
			}
		}
	}
	if a.redis != nil && b.redis != nil {
		rw := &RedisWindow{CPUS: b.redis.cpu - a.redis.cpu, MainCPUS: b.redis.mainCPU - a.redis.mainCPU, Commands: map[string]int64{}}
		for name, n1 := range b.redis.calls {
			d := n1 - a.redis.calls[name] // a command first run in the window is absent from a
			if d <= 0 {
				continue
			}
			rw.Commands[name] = d
			if name != "info" && !strings.HasPrefix(name, "config") {
				rw.Calls += d
			}
		}
		w.Redis = rw
	}
	return w
}

// userHZ is the unit of utime and stime in /proc/<pid>/stat.
const userHZ = 100

// procCPU is utime+stime of pid, every thread.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return time.Duration(ut+st) * time.Second / userHZ, nil
}

// coreIdle reads the idle and iowait seconds of each CPU from /proc/stat.
func coreIdle(cpus []int) (map[int]float64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil, err
	}
	return parseCoreIdle(string(b), cpus)
}

func parseCoreIdle(stat string, cpus []int) (map[int]float64, error) {
	want := map[string]int{}
	for _, c := range cpus {
		want["cpu"+strconv.Itoa(c)] = c
	}
	idle := map[int]float64{}
	for _, line := range strings.Split(stat, "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			continue
		}
		cpu, ok := want[f[0]]
		if !ok {
			continue
		}
		// user nice system idle iowait ...
		i, err1 := strconv.ParseInt(f[4], 10, 64)
		w, err2 := strconv.ParseInt(f[5], 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("/proc/stat %s: %w", f[0], err)
		}
		idle[cpu] = float64(i+w) / userHZ
	}
	for _, c := range cpus {
		if _, ok := idle[c]; !ok {
			return idle, fmt.Errorf("/proc/stat has no cpu%d", c)
		}
	}
	return idle, nil
}

func get(ctx context.Context, url string) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = cancelBody{resp.Body, cancel}
	return resp, nil
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// scrapeCounter sums a metric over its labels.
func scrapeCounter(ctx context.Context, url, name string) (float64, error) {
	resp, err := get(ctx, url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	tp := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := tp.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, err
	}
	fam := fams[name]
	if fam == nil {
		return 0, fmt.Errorf("%s has no %s", url, name)
	}
	var v float64
	for _, m := range fam.GetMetric() {
		v += m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue()
	}
	return v, nil
}

// readRedisInfo asks addr for INFO cpu commandstats on a connection of its
// own (RESP2, no HELLO: the only command it sends is the INFO).
func readRedisInfo(ctx context.Context, addr string) (*redisInfo, error) {
	d := net.Dialer{Timeout: 2 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "*3\r\n$4\r\nINFO\r\n$3\r\ncpu\r\n$12\r\ncommandstats\r\n"); err != nil {
		return nil, err
	}
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimRight(line, "\r\n")
	if !strings.HasPrefix(line, "$") {
		return nil, fmt.Errorf("INFO: %s", line)
	}
	n, err := strconv.Atoi(line[1:])
	if err != nil || n < 0 {
		return nil, fmt.Errorf("INFO: reply %q", line)
	}
	body := make([]byte, n+2)
	if _, err := io.ReadFull(br, body); err != nil {
		return nil, err
	}
	return parseRedisInfo(string(body[:n]))
}

// parseRedisInfo reads used_cpu_{sys,user}[_main_thread] and the calls of
// every cmdstat_<name> line.
func parseRedisInfo(s string) (*redisInfo, error) {
	info := &redisInfo{calls: map[string]int64{}}
	seen := 0
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch k {
		case "used_cpu_sys", "used_cpu_user", "used_cpu_sys_main_thread", "used_cpu_user_main_thread":
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return nil, fmt.Errorf("INFO %s: %w", k, err)
			}
			if strings.HasSuffix(k, "_main_thread") {
				info.mainCPU += f
			} else {
				info.cpu += f
				seen++
			}
			continue
		}
		name, ok := strings.CutPrefix(k, "cmdstat_")
		if !ok {
			continue
		}
		for _, kv := range strings.Split(v, ",") {
			if c, ok := strings.CutPrefix(kv, "calls="); ok {
				n, err := strconv.ParseInt(c, 10, 64)
				if err != nil {
					return nil, fmt.Errorf("INFO %s: %w", k, err)
				}
				info.calls[name] = n
			}
		}
	}
	if seen != 2 {
		return nil, errors.New("INFO has no used_cpu_sys and used_cpu_user")
	}
	return info, nil
}
