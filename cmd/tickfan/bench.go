package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"

	"github.com/tickfan/tickfan/bench"
)

const benchUsage = `usage: tickfan bench [flags]                       run scenarios against a running server
       tickfan bench report -in results.jsonl [-out report.html] [-md] [-hft]
       tickfan bench echo --listen 127.0.0.1:PORT        a TCP echo server for hft --echo

Runs load scenarios against an already running tickfan server and writes
one JSON line per run (every parameter, the figures, and the latency
percentile distribution) to --out. Start the server so that the bench may
publish and is not rate limited, for example:

  tickfan serve --anonymous-pub 'bench.>' --cmd-rate 1000000

Scenarios (--scenario, or all: idle fanout saturate slow herd hft):
  fanout    C conns over T topics (conn i holds topic i%T), P pubs/s per topic
            of S bytes, open loop, measured for --duration after --warmup
  saturate  fanout stepping through --rates until a step does not keep up
  idle      N idle WebSocket conns (one sub each unless --idle-no-sub): server
            RSS growth per conn from /proc/<pid>/status after --settle
  slow      fanout where --slow-frac of the conns (each holding every topic)
            stop reading after the warm-up: the healthy conns' figures, and
            the lags the slow ones got
  herd      every conn drops at once while publishing goes on and all
            reconnect with since after --herd-gap: time to resubscribe,
            recovered vs reset, missing and duplicates
  hft       TCP msgpack, one publisher, 10000 pubs/s, run with 1 and with 10
            subscribers (one result each; --conns runs that count alone);
            with loopback ping-pong, server ping and (--echo) cross-core
            echo round trips, measured before and after, for comparison
  soak      (not in all) C subscribers mixing TCP, ws-json and ws-msgpack,
            two topics each, and a publisher, all reconnecting with since
            whenever their connection breaks, through --soak-phases while
            the network is shaped from outside (scripts/soak-weaknet); checks
            that nothing was lost silently and everyone caught up, fails if not

Latency runs from each publication's due time (start + i/rate, carried in
its payload) to its receipt; latency from sent runs from the clock read
just before the publisher's write (also carried in the payload), and the
publisher's lateness is the difference. Server CPU is utime+stime of --pid (default:
the process listening on the --ws port) over the measured window.
Defaults of 0 below depend on the scenario.

Flags:
`

func benchCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "versus" {
		return benchVersus(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "report" {
		return benchReport(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "echo" {
		return benchEcho(args[1:], stderr)
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		io.WriteString(stderr, benchUsage)
		fs.PrintDefaults()
	}
	var cfg bench.Config
	fs.StringVar(&cfg.Scenario, "scenario", "fanout", "`name`: fanout, saturate, idle, slow, herd, hft, soak or all")
	fs.StringVar(&cfg.WSURL, "ws", "ws://127.0.0.1:8080/ws", "server WebSocket `url`")
	fs.StringVar(&cfg.TCPAddr, "tcp", "127.0.0.1:8081", "server msgpack-over-TCP `address` (the publisher always uses it)")
	fs.StringVar(&cfg.HTTPURL, "http", "http://127.0.0.1:8082", "server HTTP `url`, read for /metrics counters (- for none)")
	fs.StringVar(&cfg.Label, "label", "", "free `text` naming the engine or setup in the results, e.g. gnet")
	fs.IntVar(&cfg.PID, "pid", 0, "server process `id` for CPU and memory (default: the process listening on the --ws port)")
	fs.StringVar(&cfg.Token, "token", "", "JWT with a pub claim for the publisher (default: anonymous, needs the server's --anonymous-pub 'bench.>')")
	proto := fs.String("proto", "", "subscriber `transport`: ws-json, ws-msgpack or tcp (default ws-json; hft tcp)")
	fs.IntVar(&cfg.Conns, "conns", 0, "subscriber connections (`count`; default fanout/saturate 10000, idle 15000, slow 1000, herd 5000, hft 10)")
	fs.IntVar(&cfg.Topics, "topics", 0, "topics (`count`; default 10, hft 1); connection i holds topic i%topics")
	fs.Float64Var(&cfg.Rate, "rate", 0, "publications per second per topic (`rate`; default fanout 10, slow 50, herd 20, hft 10000)")
	rates := fs.String("rates", "", "saturate steps, publications/s per topic, comma separated (`list`; default 10,20,50,100,200,400,800)")
	fs.IntVar(&cfg.Size, "size", 0, "payload size in `bytes` (default 200, slow 2048, hft 64; at least 20)")
	fs.StringVar(&cfg.Echo, "echo", "", "hft: `address` of a tickfan bench echo server for a cross-core round-trip baseline (default: none)")
	fs.DurationVar(&cfg.Duration, "duration", 0, "measured window (`duration`; default 10s, saturate 5s a step, herd 8s)")
	fs.DurationVar(&cfg.Warmup, "warmup", 0, "publishing before the measured window (`duration`; default 2s, saturate 1s)")
	fs.DurationVar(&cfg.Drain, "drain", 0, "longest wait for stragglers after the last publication (`duration`; default 5s)")
	fs.Float64Var(&cfg.SlowFrac, "slow-frac", 0, "slow: `fraction` of connections that stop reading (default 0.1)")
	soakPhases := fs.String("soak-phases", "", "soak: phases as name:duration, comma separated, e.g. clean:10s,weak:40s,calm:10s (`list`; latencies are reported per phase; default one phase of --duration)")
	fs.DurationVar(&cfg.HerdGap, "herd-gap", 0, "herd: how long the subscribers stay away (`duration`; default 1s)")
	fs.DurationVar(&cfg.Settle, "settle", 0, "idle: pause before reading memory (`duration`; default 3s)")
	fs.BoolVar(&cfg.IdleNoSub, "idle-no-sub", false, "idle: connections subscribe to nothing (default: one topic each)")
	fs.IntVar(&cfg.PubConns, "pub-conns", 0, "publisher TCP connections; topic t goes on connection t%pub-conns (`count`; default 1)")
	fs.IntVar(&cfg.Loops, "loops", 0, "bench gnet event loops (`count`; default one per CPU the bench may use)")
	fs.IntVar(&cfg.Dialers, "dialers", 0, "connections opened at once (`count`; default 64)")
	pace := fs.String("pace", "timer", "how the publisher waits for due times: `mode` timer (timerfd, wakes within tens of µs), sleep (Go timer, up to 1ms late) or spin (exact, takes a core)")
	out := fs.String("out", "-", "results `file`, JSON lines, appended to (- for stdout)")
	htmlOut := fs.String("html", "", "also write an HTML report of this run's results to `file`")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")
	cpuProfile := fs.String("cpuprofile", "", "write the bench's own CPU profile to `file` (go tool pprof)")
	fs.StringVar(&cfg.Target, "target", "tickfan", "server under test: `name` tickfan or centrifugo (Centrifugo v5: --ws ws://HOST/connection/websocket, --http http://HOST; fanout only; tickfan bench versus -in FILE prints the table)")
	fs.BoolVar(&cfg.PubHTTP, "pub-http", false, "publish each publication as its own POST to --http's /api/publish instead of TCP pub commands, with WebSocket JSON subscribers that also read its sent time (fanout only; always so for centrifugo)")
	fs.StringVar(&cfg.APIKey, "api-key", "", "tickfan's HTTP publish `key` (its --api-key), for --pub-http")
	fs.StringVar(&cfg.CentrifugoAPIKey, "centrifugo-api-key", "", "Centrifugo's api_key (`key`), sent as X-API-Key")
	fs.IntVar(&cfg.PubInflight, "pub-inflight", 0, "HTTP publishing: requests in flight at most, each on a keep-alive connection of its own (`count`; default 64)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (see tickfan bench -h)", fs.Args())
	}
	if *proto != "" {
		p, err := bench.ParseProto(*proto)
		if err != nil {
			return fmt.Errorf("--proto: %w", err)
		}
		cfg.Proto = p
	}
	p, err := bench.ParsePace(*pace)
	if err != nil {
		return fmt.Errorf("--pace: %w", err)
	}
	cfg.Pace = p
	if *soakPhases != "" {
		ps, err := bench.ParseSoakPhases(*soakPhases)
		if err != nil {
			return fmt.Errorf("--soak-phases: %w", err)
		}
		cfg.SoakPhases = ps
	}
	if *rates != "" {
		for _, s := range strings.Split(*rates, ",") {
			v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if err != nil || v <= 0 {
				return fmt.Errorf("--rates: %q is not a rate", s)
			}
			cfg.Rates = append(cfg.Rates, v)
		}
	}
	if !*quiet {
		cfg.Log = stderr
	}
	// The gnet loops wait in epoll_wait holding their Go P; with no P left
	// (GOMAXPROCS is 1 under taskset -c N) the publisher's timer and the
	// reply readers wait for the runtime's sysmon, milliseconds late. Two
	// spare Ps let the kernel, not sysmon, share the CPU among them.
	loops := cfg.Loops
	if loops <= 0 {
		loops = runtime.NumCPU()
	}
	if procs := loops + 2; runtime.GOMAXPROCS(0) < procs {
		runtime.GOMAXPROCS(procs)
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	w := stdout
	if *out != "-" && *out != "" {
		f, err := os.OpenFile(*out, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var results []bench.Result
	cfg.EmitVersus = func(v bench.Versus) error {
		results = append(results, v.Result)
		return bench.EmitVersus(w, v)
	}
	err = bench.Run(ctx, cfg, func(r bench.Result) error {
		results = append(results, r)
		return bench.Emit(w, r)
	})
	if ctx.Err() != nil && err == nil {
		err = errors.New("interrupted")
	}
	if *htmlOut != "" && len(results) > 0 {
		if herr := writeReport(*htmlOut, results); herr != nil {
			err = errors.Join(err, herr)
		}
	}
	return err
}

func writeReport(path string, rs []bench.Result) error {
	var b bytes.Buffer
	if err := bench.WriteHTML(&b, rs); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// benchReport renders a results file as HTML and, with -md, a markdown
// table on stdout.
func benchReport(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	in := fs.String("in", "", "results `file` (JSON lines from tickfan bench)")
	out := fs.String("out", "", "HTML report `file` to write (self-contained: inline SVG, no script)")
	md := fs.Bool("md", false, "print a markdown table of the results on stdout")
	hft := fs.Bool("hft", false, "print the markdown table of the hft results on stdout (baselines, lateness, both latencies, CPU per publication)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *in == "" || (*out == "" && !*md && !*hft) {
		return fmt.Errorf("usage: tickfan bench report -in results.jsonl [-out report.html] [-md] [-hft]")
	}
	rs, err := bench.ReadResults(*in)
	if err != nil {
		return err
	}
	if len(rs) == 0 {
		return fmt.Errorf("%s holds no results", *in)
	}
	if *out != "" {
		if err := writeReport(*out, rs); err != nil {
			return err
		}
	}
	if *md {
		if err := bench.WriteMarkdown(stdout, rs); err != nil {
			return err
		}
	}
	if *hft {
		return bench.WriteHFTMarkdown(stdout, rs)
	}
	return nil
}

// benchEcho serves TCP echo on --listen until interrupted: the far end of
// hft's --echo baseline, started pinned to the server's core.
func benchEcho(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench echo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8090", "TCP `address` to echo on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (see tickfan bench echo -h)", fs.Args())
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("bench echo: %w", err)
	}
	fmt.Fprintf(stderr, "bench echo: listening on %s\n", ln.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return bench.ServeEcho(ctx, ln)
}
