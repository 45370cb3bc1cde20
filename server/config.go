package server

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/tickfan/tickfan/topic"
)

// Config configures a Server. The zero value of a field means its default,
// given in the field's comment and, where it does not depend on the
// machine or on another field, in DefaultConfig.
type Config struct {
	// WSAddr is the WebSocket listener. Default ":8080".
	WSAddr string
	// WSPath is the WebSocket path. Default "/ws".
	WSPath string
	// TCPAddr is the msgpack-over-TCP listener. Default ":8081".
	TCPAddr string
	// HTTPAddr is the admin and publish API. Default ":8082".
	HTTPAddr string
	// DebugAddr, when set, serves /debug/pprof/ there (bind it to
	// 127.0.0.1: profiles and the command line are not for the public).
	// Default empty: no pprof anywhere.
	DebugAddr string
	// MaxFrame is the largest inbound frame or message, in bytes. Default 1 MiB.
	MaxFrame int
	// HistorySize is how many publications each topic keeps. Default 1000.
	HistorySize int
	// Conflate lists latest-value topic patterns, comma separated.
	// Default "ticker.*"; "-" means none.
	Conflate string
	// APIKey authorises POST /api/publish. Empty disables HTTP publishing.
	APIKey string
	// APIKeyFile names a file whose first line is the API key; it is read
	// at start and wins over APIKey. Default empty.
	APIKeyFile string
	// JWTSecret is the HS256 key of client tokens. Default empty.
	JWTSecret string
	// JWTSecretFile names a file whose first line is the HS256 key; it is
	// read at start and wins over JWTSecret, so the secret need not be on
	// the command line. Default empty.
	JWTSecretFile string
	// JWTKeyFile names a PEM public key (RSA for RS256, ECDSA P-256 for
	// ES256) of client tokens. Set JWTSecret or JWTKeyFile, not both;
	// neither (the default) turns token authentication off (auth answers
	// 401).
	JWTKeyFile string
	// RequireAuth refuses sub and pull of public topics to clients without
	// a token (401). Default false: public topics are open to anyone.
	RequireAuth bool
	// AllowedOrigins lists the Origin values a browser's WebSocket upgrade
	// may carry, comma separated; others get 403. Empty allows any. A
	// request without Origin (not a browser) is always allowed.
	AllowedOrigins string
	// AnonymousPub lists topic patterns that clients without a token may
	// publish to with the pub command, comma separated. Default none.
	AnonymousPub string
	// MaxBatch is the most publications in one /api/publish batch. Default 1000.
	MaxBatch int
	// MaxPull is the largest pull limit honoured. Default 1000.
	MaxPull int
	// Heartbeat is the interval of server pings. Default 25 s.
	Heartbeat time.Duration
	// IdleTimeout closes (4001) a client silent this long. Default 60 s.
	IdleTimeout time.Duration
	// HandshakeTimeout closes a WebSocket connection that has not finished
	// its upgrade this long after it opened. Default 10 s.
	HandshakeTimeout time.Duration
	// SlowTimeout closes (4005) a client over its outbox high-water mark this
	// long. Default 30 s.
	SlowTimeout time.Duration
	// OutboxBytes is a connection's outbox high-water mark in bytes queued
	// (ours plus the reactor's write buffer); the low-water mark is a
	// quarter of it. Default 1 MiB.
	OutboxBytes int
	// OutboxMsgs is the high-water mark in frames queued; the low-water
	// mark is a quarter of it. Default 4096.
	OutboxMsgs int
	// QueueMemory bounds the bytes queued for all clients together (their
	// outboxes and what the engine holds for their sockets). Past it each
	// connection's high-water mark is its share of it (at least 16 KiB), so
	// the clients with the most queued go slow (lag, then history or
	// reset) and memory and latency stay bounded when the node cannot keep
	// up. Default 512 MiB; negative: no bound.
	QueueMemory int64
	// MaxConns bounds open client connections; past it a new one is closed
	// with 4006. Default (0): the process's open-file limit less 256.
	MaxConns int
	// MaxConnsPerIP bounds open connections from one IP address (4006).
	// Default (0): half of MaxConns, so that no one address can take every
	// place while a NAT or a proxy of half the node still fits; negative:
	// no bound (a server behind one proxy sees one address).
	MaxConnsPerIP int
	// ConnRatePerIP bounds new connections per second from one IP (4006).
	// Default (0): 1000, more than a NAT's clients reconnecting with
	// backoff make; negative: no bound.
	ConnRatePerIP int
	// CmdRate is the commands per second a connection may send (a burst of
	// as many is allowed); past it commands get 429, and a client that sends
	// another full burst while refused is closed with 4004. Default 100.
	CmdRate int
	// PubRate bounds the pub commands per second of a connection whose
	// token's pub claim grants the topic (a burst of as many); past it they
	// get 429. Such pubs never count against CmdRate: producers are trusted.
	// Default 0: no bound.
	PubRate int
	// MaxSubs bounds the topics one connection holds (429). Default 1000.
	MaxSubs int
	// MaxBody bounds a POST /api/publish body, in bytes (413). Default 16 MiB.
	MaxBody int
	// MaxTopics bounds the topics the node holds. A topic exists once it
	// is published to; a subscription alone creates none. A publication
	// to a new topic past the bound answers 429. Default 1,000,000.
	MaxTopics int
	// AnonMaxFrame is the largest inbound message, in bytes, of a
	// connection that has not authenticated: anonymous commands are small.
	// Default 64 KiB (never more than MaxFrame).
	AnonMaxFrame int
	// MessageTimeout is the time a client has to finish a message it has
	// started (a TCP frame, a WebSocket frame or fragmented message);
	// past it the connection is closed with 4004. Default 10 s.
	MessageTimeout time.Duration
	// InboundBytes bounds the bytes of unfinished inbound messages held
	// for all connections together; a message that would pass it closes
	// its connection with 4004. Default 256 MiB.
	InboundBytes int
	// HTTPReadTimeout bounds the reading of one HTTP request, headers and
	// body, on HTTPAddr and AdminAddr; a publish body not in by then is
	// answered 408 and its connection closed. The default allows a
	// --max-body (16 MiB) body over a link of 4.5 Mbit/s. Default 30 s.
	HTTPReadTimeout time.Duration
	// HTTPIdleTimeout closes an HTTP keep-alive connection that has had no
	// request for this long. Default 60 s.
	HTTPIdleTimeout time.Duration
	// AdminAddr, when set, serves /metrics and the status page there
	// instead of on HTTPAddr, which then carries only the publish API and
	// the health checks. Default empty.
	AdminAddr string
	// DrainTimeout is how long Drain lets clients go on their own after
	// {"op":"close","code":4007} before it closes them. Default 10 s.
	DrainTimeout time.Duration
	// WheelTick is the resolution of the timing wheel behind every deadline.
	// Default 10 ms.
	WheelTick time.Duration
	// Engine is the reactor: "gnet" (default), "evio" or "std" (net/http
	// and gorilla/websocket, goroutines per connection).
	Engine string
	// Loops is the number of event loops. Default (0): GOMAXPROCS.
	Loops int
	// Logger receives the server's logs. Default (nil): slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns the Config whose every field is its default: what
// New gives a zero field, and what tickfan serve's flags start from. Four
// defaults are worked out by New when it runs, not fixed here, so their
// fields stay zero: MaxConns (the open-file limit less 256), MaxConnsPerIP
// (half of MaxConns, whatever MaxConns is set to), Loops (GOMAXPROCS) and
// Logger (slog.Default()).
func DefaultConfig() Config {
	return Config{
		WSAddr:           ":8080",
		WSPath:           "/ws",
		TCPAddr:          ":8081",
		HTTPAddr:         ":8082",
		MaxFrame:         1 << 20,
		HistorySize:      1000,
		Conflate:         "ticker.*",
		MaxBatch:         1000,
		MaxPull:          1000,
		Heartbeat:        25 * time.Second,
		IdleTimeout:      60 * time.Second,
		HandshakeTimeout: 10 * time.Second,
		SlowTimeout:      30 * time.Second,
		OutboxBytes:      1 << 20,
		OutboxMsgs:       4096,
		QueueMemory:      512 << 20,
		ConnRatePerIP:    1000,
		CmdRate:          100,
		MaxSubs:          1000,
		MaxBody:          16 << 20,
		MaxTopics:        1_000_000,
		AnonMaxFrame:     64 << 10,
		MessageTimeout:   10 * time.Second,
		InboundBytes:     256 << 20,
		HTTPReadTimeout:  30 * time.Second,
		HTTPIdleTimeout:  60 * time.Second,
		DrainTimeout:     10 * time.Second,
		WheelTick:        10 * time.Millisecond,
		Engine:           EngineGnet,
	}
}

// withDefaults returns cfg with its zero fields set to their defaults from
// DefaultConfig. A count or duration below zero takes its default too,
// except where a negative value means something: HistorySize and PubRate
// (validate refuses them) and the per-IP bounds (off).
func (cfg Config) withDefaults() Config {
	d := DefaultConfig()
	cfg.WSAddr = cmp.Or(cfg.WSAddr, d.WSAddr)
	cfg.WSPath = cmp.Or(cfg.WSPath, d.WSPath)
	cfg.TCPAddr = cmp.Or(cfg.TCPAddr, d.TCPAddr)
	cfg.HTTPAddr = cmp.Or(cfg.HTTPAddr, d.HTTPAddr)
	cfg.Conflate = cmp.Or(cfg.Conflate, d.Conflate)
	cfg.Engine = cmp.Or(cfg.Engine, d.Engine)
	cfg.HistorySize = cmp.Or(cfg.HistorySize, d.HistorySize)
	cfg.QueueMemory = cmp.Or(cfg.QueueMemory, d.QueueMemory) // negative: no bound
	positive(&cfg.MaxFrame, d.MaxFrame)
	positive(&cfg.MaxBatch, d.MaxBatch)
	positive(&cfg.MaxPull, d.MaxPull)
	positive(&cfg.Heartbeat, d.Heartbeat)
	positive(&cfg.IdleTimeout, d.IdleTimeout)
	positive(&cfg.HandshakeTimeout, d.HandshakeTimeout)
	positive(&cfg.SlowTimeout, d.SlowTimeout)
	positive(&cfg.WheelTick, d.WheelTick)
	positive(&cfg.DrainTimeout, d.DrainTimeout)
	positive(&cfg.HTTPReadTimeout, d.HTTPReadTimeout)
	positive(&cfg.HTTPIdleTimeout, d.HTTPIdleTimeout)
	positive(&cfg.MessageTimeout, d.MessageTimeout)
	positive(&cfg.OutboxBytes, d.OutboxBytes)
	positive(&cfg.OutboxMsgs, d.OutboxMsgs)
	positive(&cfg.CmdRate, d.CmdRate)
	positive(&cfg.MaxSubs, d.MaxSubs)
	positive(&cfg.MaxBody, d.MaxBody)
	positive(&cfg.MaxTopics, d.MaxTopics)
	positive(&cfg.AnonMaxFrame, d.AnonMaxFrame)
	positive(&cfg.InboundBytes, d.InboundBytes)
	cfg.AnonMaxFrame = min(cfg.AnonMaxFrame, cfg.MaxFrame)
	positive(&cfg.MaxConns, fileLimit()-256)
	switch { // internally 0 is no bound
	case cfg.MaxConnsPerIP == 0:
		cfg.MaxConnsPerIP = max(cfg.MaxConns/2, 1)
	case cfg.MaxConnsPerIP < 0:
		cfg.MaxConnsPerIP = 0
	}
	switch {
	case cfg.ConnRatePerIP == 0:
		cfg.ConnRatePerIP = d.ConnRatePerIP
	case cfg.ConnRatePerIP < 0:
		cfg.ConnRatePerIP = 0
	}
	positive(&cfg.Loops, runtime.GOMAXPROCS(0))
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg
}

// positive sets *v to def unless *v is more than zero.
func positive[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// validate checks what withDefaults leaves as given: addresses, the
// WebSocket path, counts whose zero is meaningful or that only zero maps to
// a default, the engine, pattern lists, origins and the token keys. Its
// messages name the tickfan serve flag of the field, so that an operator
// can find it; a library user finds the field by the flag's name.
func (cfg Config) validate() error {
	for _, a := range []struct{ flag, addr string }{
		{"--ws-addr", cfg.WSAddr}, {"--tcp-addr", cfg.TCPAddr}, {"--http-addr", cfg.HTTPAddr}, {"--debug-addr", cfg.DebugAddr},
	} {
		if a.flag == "--debug-addr" && a.addr == "" {
			continue // off
		}
		if err := checkAddr(a.addr); err != nil {
			return fmt.Errorf("%s %q: %v", a.flag, a.addr, err)
		}
	}
	if !strings.HasPrefix(cfg.WSPath, "/") || strings.ContainsAny(cfg.WSPath, "?# \t") {
		return fmt.Errorf("--ws-path %q: must start with / and hold no space, ? or #, e.g. /ws", cfg.WSPath)
	}
	if cfg.HistorySize < 1 {
		return fmt.Errorf("--history-size %d: must be at least 1", cfg.HistorySize)
	}
	for _, n := range []struct {
		flag string
		v    int
		zero string
	}{
		{"--pub-rate", cfg.PubRate, "no limit"},
	} {
		if n.v < 0 {
			return fmt.Errorf("%s %d: must be 0 (%s) or more", n.flag, n.v, n.zero)
		}
	}
	if !slices.Contains(Engines, cfg.Engine) {
		return fmt.Errorf("--engine %q: want one of %s", cfg.Engine, strings.Join(Engines, ", "))
	}
	if _, err := patterns("--conflate", cfg.Conflate); err != nil {
		return err
	}
	if cfg.AnonymousPub != "" {
		if _, err := patterns("--anonymous-pub", cfg.AnonymousPub); err != nil {
			return err
		}
	}
	for _, o := range strings.Split(cfg.AllowedOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" && !isOrigin(o) {
			return fmt.Errorf("--allowed-origins %q: not an origin; want scheme://host[:port] as browsers send it, e.g. https://app.example.com (empty allows any)", o)
		}
	}
	if cfg.JWTKeyFile != "" && (cfg.JWTSecret != "" || cfg.JWTSecretFile != "") {
		return fmt.Errorf("--jwt-key and --jwt-secret (or --jwt-secret-file): set one, not both")
	}
	for _, f := range []struct{ flag, name string }{
		{"--api-key-file", cfg.APIKeyFile}, {"--jwt-secret-file", cfg.JWTSecretFile}, {"--jwt-key", cfg.JWTKeyFile},
	} {
		if f.name == "" {
			continue
		}
		if st, err := os.Stat(f.name); err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return fmt.Errorf("%s %s: %v", f.flag, f.name, err)
		} else if st.IsDir() {
			return fmt.Errorf("%s %s: is a directory, want a file", f.flag, f.name)
		}
	}
	return nil
}

// checkAddr checks a listen address is host:port with a usable port.
func checkAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want host:port, e.g. :8080 or 127.0.0.1:8080")
	}
	if port == "" {
		return fmt.Errorf("no port; want host:port, e.g. 127.0.0.1:8080 (port 0 picks a free one)")
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("port %q: want 0 to 65535", port)
	}
	return nil
}

// isOrigin reports whether o has the form of a browser's Origin header:
// scheme://host[:port] with nothing after it, or "null".
func isOrigin(o string) bool {
	if o == "null" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Scheme != "" && u.Host != "" && u.User == nil &&
		u.Path == "" && u.RawQuery == "" && u.Fragment == "" && !u.ForceQuery
}

// fileLimit is the soft limit on open files, or 1024 if unknown.
func fileLimit() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<30 {
		return 1024
	}
	return max(int(rl.Cur), 512)
}

// patterns parses a comma-separated pattern list flag; "-" is the empty list.
func patterns(flag, s string) (topic.Patterns, error) {
	if s == "-" {
		return nil, nil
	}
	ps, err := topic.ParsePatterns(s)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	return ps, nil
}
