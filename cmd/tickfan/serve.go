package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/tickfan/tickfan/internal/demofeed"
	"github.com/tickfan/tickfan/server"
)

// serveFlags is what tickfan serve takes from its command line and
// environment.
type serveFlags struct {
	cfg      server.Config
	demo     bool
	demoTick time.Duration
	logLevel string
}

// newServeFlags defines the flags of serve. A flag of a server.Config field
// defaults to that field of server.DefaultConfig, so a default is written
// in one place and --help shows the one the server uses; 0 stands for the
// defaults the server works out when it starts (--max-conns,
// --max-conns-per-ip, --loops).
func newServeFlags(stderr io.Writer) (*flag.FlagSet, *serveFlags) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: tickfan serve [flags]\n\nRuns the server until SIGTERM or SIGINT, then drains its clients.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	def := server.DefaultConfig()
	f := &serveFlags{cfg: def} // the fields without a flag keep their defaults
	cfg := &f.cfg
	fs.StringVar(&cfg.WSAddr, "ws-addr", def.WSAddr, "WebSocket listen address (`host:port`)")
	fs.StringVar(&cfg.WSPath, "ws-path", def.WSPath, "WebSocket path")
	fs.StringVar(&cfg.TCPAddr, "tcp-addr", def.TCPAddr, "msgpack-over-TCP listen address (`host:port`)")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", def.HTTPAddr, "HTTP API, metrics and status page listen address (`host:port`)")
	fs.StringVar(&cfg.DebugAddr, "debug-addr", def.DebugAddr, "serve /debug/pprof/ on this `host:port` (use 127.0.0.1:port; default off)")
	fs.IntVar(&cfg.MaxFrame, "max-frame", def.MaxFrame, "largest inbound frame or message, in `bytes`")
	fs.IntVar(&cfg.HistorySize, "history-size", def.HistorySize, "publications kept per topic for recovery and pull (`count`)")
	fs.StringVar(&cfg.Conflate, "conflate", def.Conflate, "latest-value topic `patterns`, comma separated (- for none)")
	fs.StringVar(&cfg.APIKey, "api-key", def.APIKey, "`key` for POST /api/publish (Authorization: apikey <key>); empty turns HTTP publishing off")
	fs.StringVar(&cfg.APIKeyFile, "api-key-file", def.APIKeyFile, "`file` whose first line is the API key (wins over --api-key)")
	fs.StringVar(&cfg.JWTSecret, "jwt-secret", def.JWTSecret, "HS256 `secret` of client tokens")
	fs.StringVar(&cfg.JWTSecretFile, "jwt-secret-file", def.JWTSecretFile, "`file` whose first line is the HS256 secret (wins over --jwt-secret)")
	fs.StringVar(&cfg.JWTKeyFile, "jwt-key", def.JWTKeyFile, "PEM public key `file` of client tokens: RSA for RS256, ECDSA P-256 for ES256")
	fs.BoolVar(&cfg.RequireAuth, "require-auth", def.RequireAuth, "refuse sub and pull of public topics to clients without a token (401)")
	fs.StringVar(&cfg.AllowedOrigins, "allowed-origins", def.AllowedOrigins, "Origin `values` a browser's WebSocket upgrade may carry, comma separated (others 403; default any)")
	fs.StringVar(&cfg.AnonymousPub, "anonymous-pub", def.AnonymousPub, "topic `patterns` clients without a token may pub to, comma separated (default none)")
	fs.DurationVar(&cfg.Heartbeat, "heartbeat", def.Heartbeat, "server ping `interval` (WebSocket ping frame; TCP {\"op\":\"ping\"})")
	fs.DurationVar(&cfg.IdleTimeout, "idle-timeout", def.IdleTimeout, "close (4001) a client silent this `long`")
	fs.DurationVar(&cfg.HandshakeTimeout, "handshake-timeout", def.HandshakeTimeout, "close a WebSocket connection whose upgrade is unfinished after this `long`")
	fs.DurationVar(&cfg.SlowTimeout, "slow-timeout", def.SlowTimeout, "close (4005) a client over its outbox high-water mark this `long`")
	fs.IntVar(&cfg.OutboxBytes, "outbox-bytes", def.OutboxBytes, "per-connection outbox high-water mark in `bytes` (low-water: a quarter)")
	fs.IntVar(&cfg.OutboxMsgs, "outbox-msgs", def.OutboxMsgs, "per-connection outbox high-water mark in frames (`count`; low-water: a quarter)")
	fs.Int64Var(&cfg.QueueMemory, "queue-memory", def.QueueMemory, "`bytes` queued for all clients together (outboxes and engine write buffers); past it each client's high-water mark is its share, so the ones furthest behind lag first (-1 = no bound; 0 = the default)")
	fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", def.DrainTimeout, "on SIGTERM or SIGINT, how `long` clients get to leave after close 4007 before they are closed")
	fs.IntVar(&cfg.MaxConns, "max-conns", def.MaxConns, "most open connections of every listener together (WebSocket, TCP, HTTP); past it a WebSocket or TCP client gets close 4006, an HTTP connection is closed at accept (`count`; 0 = the open-file limit less 256)")
	fs.IntVar(&cfg.MaxConnsPerIP, "max-conns-per-ip", def.MaxConnsPerIP, "most open connections from one IP address (`count`; 0 = half of --max-conns; -1 = no limit, e.g. behind a proxy)")
	fs.IntVar(&cfg.ConnRatePerIP, "conn-rate-per-ip", def.ConnRatePerIP, "most new connections per second from one IP address (`count`; -1 = no limit; 0 = the default)")
	fs.IntVar(&cfg.CmdRate, "cmd-rate", def.CmdRate, "commands per second per connection before 429 (`count`; a second burst while refused closes with 4004)")
	fs.IntVar(&cfg.PubRate, "pub-rate", def.PubRate, "pub commands per second per connection whose token's pub claim grants the topic (`count`; 0 = no limit; never counted in --cmd-rate)")
	fs.IntVar(&cfg.MaxSubs, "max-subs", def.MaxSubs, "most topics one connection may hold (`count`)")
	fs.IntVar(&cfg.MaxBody, "max-body", def.MaxBody, "largest POST /api/publish body in `bytes` (413)")
	fs.IntVar(&cfg.MaxBatch, "max-batch", def.MaxBatch, "most publications in one /api/publish batch (`count`)")
	fs.IntVar(&cfg.MaxTopics, "max-topics", def.MaxTopics, "most topics the node holds; a topic exists once published to (`count`; 429 past it)")
	fs.IntVar(&cfg.AnonMaxFrame, "anon-max-frame", def.AnonMaxFrame, "largest inbound message of a connection that has not authenticated, in `bytes` (at most --max-frame)")
	fs.DurationVar(&cfg.MessageTimeout, "message-timeout", def.MessageTimeout, "close (4004) a client that has not finished a message it started within this `long`")
	fs.IntVar(&cfg.InboundBytes, "inbound-bytes", def.InboundBytes, "unfinished inbound messages held for all connections together, in `bytes` (past it the connection closes)")
	fs.StringVar(&cfg.AdminAddr, "admin-addr", def.AdminAddr, "serve /metrics and the status page on this `host:port` instead of --http-addr (default: on --http-addr)")
	fs.StringVar(&cfg.Engine, "engine", def.Engine, "reactor `engine`: gnet (epoll), evio (epoll), std (net/http + gorilla/websocket, goroutines per connection)")
	fs.IntVar(&cfg.Loops, "loops", def.Loops, "event loops (`count`; 0 = one per CPU available)")
	fs.DurationVar(&cfg.BusyPoll, "busy-poll", def.BusyPoll, "after each burst, each event loop polls its sockets without sleeping for this `long` (e.g. 50us; 0 = off; gnet only; for loops with cores of their own: it spends that CPU after every burst)")
	fs.StringVar(&cfg.Redis, "redis", def.Redis, "share topics with other nodes through Redis at `host:port[,host:port...]` (one server, or seeds of a Redis Cluster, detected); default: in memory")
	fs.BoolVar(&cfg.RedisCluster, "redis-cluster", def.RedisCluster, "refuse to start unless --redis is a Redis Cluster")
	fs.StringVar(&cfg.RedisUser, "redis-user", def.RedisUser, "Redis ACL `user`")
	fs.StringVar(&cfg.RedisPassword, "redis-password", def.RedisPassword, "Redis `password` (prefer --redis-password-file)")
	fs.StringVar(&cfg.RedisPasswordFile, "redis-password-file", def.RedisPasswordFile, "`file` whose first line is the Redis password (wins over --redis-password)")
	fs.BoolVar(&cfg.RedisTLS, "redis-tls", def.RedisTLS, "connect to Redis over TLS")
	fs.StringVar(&cfg.RedisTLSCA, "redis-tls-ca", def.RedisTLSCA, "PEM `file` of the CA that signed Redis's certificate (default: the system's roots)")
	fs.StringVar(&cfg.RedisTLSServerName, "redis-tls-server-name", def.RedisTLSServerName, "`name` Redis's certificate must carry (default: the host of --redis)")
	fs.DurationVar(&cfg.RedisTimeout, "redis-timeout", def.RedisTimeout, "bound of each call to Redis (`duration`)")
	fs.DurationVar(&cfg.RedisLinger, "redis-linger", def.RedisLinger, "follow a topic's Redis channel this `long` after its last local subscriber left")
	fs.DurationVar(&cfg.RedisProbe, "redis-probe", def.RedisProbe, "probe each Redis subscription connection this often (`interval`); a probe not back within two makes it again")
	fs.Var((*listFlag)(&cfg.Watch), "watch", "publish Redis `topic=key`'s value as a snapshot of topic when it changes (repeatable; env: comma separated)")
	fs.StringVar(&cfg.WatchFile, "watch-file", def.WatchFile, "`file` of topic=key pairs to watch, one a line (# comments)")
	fs.DurationVar(&cfg.WatchInterval, "watch-interval", def.WatchInterval, "read the watched keys this often (`interval`; one round trip for all)")
	fs.Var((*offFlag)(&cfg.StatusPageOff), "status-page", "serve the live status page at / and its data at /api/status (on --admin-addr when set); false answers 404 there, /metrics, /healthz and /readyz stay (default true)")
	fs.BoolVar(&f.demo, "demo", false, "publish a demo market feed (book, ticker, trade, kline topics for BTCUSDT, ETHUSDT, SOLUSDT)")
	fs.DurationVar(&f.demoTick, "demo-tick", 100*time.Millisecond, "demo feed step `interval`")
	fs.StringVar(&f.logLevel, "log-level", "info", "log `level`: debug, info, warn, error")
	return fs, f
}

func serve(args []string, stderr io.Writer) error {
	fs, f := newServeFlags(stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return badUsage("unexpected arguments %q (flags only; see tickfan serve -h)", fs.Args())
	}
	cfg := f.cfg
	if err := checkServeFlags(cfg, f.demoTick); err != nil {
		return usageError{err}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return badUsage("--log-level %q: want debug, info, warn or error", f.logLevel)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	// server.New checks the rest (addresses, path, patterns, engine, key
	// files) and opens nothing: a refused configuration binds no port.
	srv, err := server.New(cfg)
	if err != nil {
		return usageError{err}
	}
	spareProc(srv, cfg.Logger)
	if err := srv.Start(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if f.demo {
		go func() {
			cfg.Logger.Info("demo feed on", "topics", "book.*, ticker.*, trade.*, kline.1m.* for BTCUSDT ETHUSDT SOLUSDT")
			if err := demofeed.Run(ctx, demofeed.Config{Tick: f.demoTick}, srv.Publish); err != nil {
				cfg.Logger.Error("demo feed stopped", "err", err)
			}
		}()
	}
	<-ctx.Done()
	stop() // a second signal ends the process at once
	cfg.Logger.Info("draining", "timeout", cfg.DrainTimeout)
	srv.Drain()
	cfg.Logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// checkServeFlags refuses the values that server.Config would silently
// replace by its default (an empty string, a zero or negative count, a
// duration of zero or less): given on the command line, they are mistakes.
// server.New checks the rest.
func checkServeFlags(cfg server.Config, demoTick time.Duration) error {
	for _, s := range []struct{ flag, v, want string }{
		{"ws-addr", cfg.WSAddr, "want host:port, e.g. :8080 or 127.0.0.1:8080"},
		{"ws-path", cfg.WSPath, "must start with /, e.g. /ws"},
		{"tcp-addr", cfg.TCPAddr, "want host:port, e.g. :8081 or 127.0.0.1:8081"},
		{"http-addr", cfg.HTTPAddr, "want host:port, e.g. :8082 or 127.0.0.1:8082"},
		{"conflate", cfg.Conflate, "give patterns, or - for none"},
		{"engine", cfg.Engine, "want one of " + strings.Join(server.Engines, ", ")},
	} {
		if s.v == "" {
			return fmt.Errorf("--%s \"\": %s", s.flag, s.want)
		}
	}
	for _, n := range []struct {
		flag string
		v    int
		min  int
		zero string // what 0 means, when it is allowed
	}{
		{"max-frame", cfg.MaxFrame, 1, ""},
		{"history-size", cfg.HistorySize, 1, ""},
		{"outbox-bytes", cfg.OutboxBytes, 1, ""},
		{"outbox-msgs", cfg.OutboxMsgs, 1, ""},
		{"max-conns", cfg.MaxConns, 0, "the open-file limit less 256"},
		{"cmd-rate", cfg.CmdRate, 1, ""},
		{"max-subs", cfg.MaxSubs, 1, ""},
		{"max-body", cfg.MaxBody, 1, ""},
		{"max-batch", cfg.MaxBatch, 1, ""},
		{"max-topics", cfg.MaxTopics, 1, ""},
		{"anon-max-frame", cfg.AnonMaxFrame, 1, ""},
		{"inbound-bytes", cfg.InboundBytes, 1, ""},
		{"loops", cfg.Loops, 0, "one per CPU"},
	} {
		if n.v >= n.min {
			continue
		}
		if n.min == 0 {
			return fmt.Errorf("--%s %d: must be 0 (%s) or more", n.flag, n.v, n.zero)
		}
		return fmt.Errorf("--%s %d: must be at least %d", n.flag, n.v, n.min)
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{
		{"heartbeat", cfg.Heartbeat},
		{"idle-timeout", cfg.IdleTimeout},
		{"handshake-timeout", cfg.HandshakeTimeout},
		{"slow-timeout", cfg.SlowTimeout},
		{"drain-timeout", cfg.DrainTimeout},
		{"message-timeout", cfg.MessageTimeout},
		{"demo-tick", demoTick},
		{"redis-timeout", cfg.RedisTimeout},
		{"redis-linger", cfg.RedisLinger},
		{"redis-probe", cfg.RedisProbe},
		{"watch-interval", cfg.WatchInterval},
	} {
		if d.v <= 0 {
			return fmt.Errorf("--%s %s: must be more than 0", d.flag, d.v)
		}
	}
	return nil
}

// spareProc gives the Go runtime one P more than the server has event
// loops, unless GOMAXPROCS is set in the environment. A gnet or evio loop
// waits for its sockets in epoll_wait holding its P; with every P so held
// (GOMAXPROCS is the CPU count or the container's CPU quota, and there is
// one loop per CPU) the HTTP API, the Redis client and the timing wheel
// run only when the runtime's monitor takes a P back, up to 10 ms later.
// The spare P costs nothing while idle: the loops' threads sleep in the
// kernel, and the kernel shares the CPUs among the threads that run.
func spareProc(srv *server.Server, log *slog.Logger) {
	if !srv.LoopsHoldProcs() {
		return
	}
	want := srv.Loops() + 1
	if os.Getenv("GOMAXPROCS") != "" {
		if p := runtime.GOMAXPROCS(0); p < want {
			log.Warn("GOMAXPROCS leaves no P beside the event loops: the HTTP API, Redis and timers wait for a loop to be taken off its CPU (up to 10 ms); unset it or make it --loops + 1", "gomaxprocs", p, "loops", srv.Loops())
		}
		return
	}
	if runtime.GOMAXPROCS(0) < want {
		runtime.GOMAXPROCS(want)
	}
}
