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
	cfg.redisDefaults()
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
	if err := cfg.validateRedis(); err != nil {
		return err
	}
	if !slices.Contains(Engines, cfg.Engine) {
		return fmt.Errorf("--engine %q: want one of %s", cfg.Engine, strings.Join(Engines, ", "))
	}
	switch {
	case cfg.BusyPoll < 0 || cfg.BusyPoll > MaxBusyPoll:
		return fmt.Errorf("--busy-poll %s: want 0 (off) to %s, e.g. 50us", cfg.BusyPoll, MaxBusyPoll)
	case cfg.BusyPoll > 0 && cfg.Engine != EngineGnet:
		return fmt.Errorf("--busy-poll %s: only the gnet engine polls busily, not --engine %s", cfg.BusyPoll, cfg.Engine)
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

// MaxBusyPoll is the longest --busy-poll: past a few milliseconds a loop
// would rarely sleep at all.
const MaxBusyPoll = 10 * time.Millisecond
