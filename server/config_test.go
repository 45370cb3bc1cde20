package server

import (
	"io"
	"log/slog"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestConfigValidate checks that New refuses what withDefaults leaves as
// given and cannot serve, before anything listens, with a message naming
// the tickfan serve flag, and accepts the zero values that mean a default.
func TestConfigValidate(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	base := func() Config {
		return Config{WSAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", Logger: quiet}
	}
	for _, tc := range []struct {
		name string
		set  func(*Config)
		want string // "" for valid
	}{
		{"zero config", func(c *Config) { *c = Config{Logger: quiet} }, ""},
		{"loopback ports", func(*Config) {}, ""},
		{"zero counts mean defaults", func(c *Config) {
			c.MaxConns, c.MaxConnsPerIP, c.ConnRatePerIP, c.PubRate, c.Loops, c.HistorySize = 0, 0, 0, 0, 0, 0
		}, ""},
		{"named port", func(c *Config) { c.HTTPAddr = "127.0.0.1:http" }, ""},
		{"ipv6", func(c *Config) { c.TCPAddr = "[::1]:0" }, ""},
		{"debug on", func(c *Config) { c.DebugAddr = "127.0.0.1:0" }, ""},
		{"origins", func(c *Config) { c.AllowedOrigins = "https://a.example.com, http://localhost:3000,null" }, ""},
		{"no conflation", func(c *Config) { c.Conflate = "-" }, ""},
		{"anonymous pub", func(c *Config) { c.AnonymousPub = "bench.>,demo.*" }, ""},

		{"redis", func(c *Config) {
			c.Redis, c.Watch = "127.0.0.1:6379, 127.0.0.1:6380", []string{"ticker.x=px", " book.y = depth:y "}
		}, ""},
		{"busy poll", func(c *Config) { c.BusyPoll = 50 * time.Microsecond }, ""},
		{"busy poll on evio", func(c *Config) { c.BusyPoll, c.Engine = 50*time.Microsecond, "evio" }, `--busy-poll 50µs: only the gnet engine polls busily, not --engine evio`},
		{"busy poll too long", func(c *Config) { c.BusyPoll = time.Second }, `--busy-poll 1s: want 0 (off) to 10ms`},
		{"busy poll negative", func(c *Config) { c.BusyPoll = -time.Microsecond }, `--busy-poll -1µs: want 0 (off) to 10ms`},
		{"redis without port", func(c *Config) { c.Redis = "127.0.0.1" }, `--redis "127.0.0.1": want host:port`},
		{"redis cluster without redis", func(c *Config) { c.RedisCluster = true }, `--redis-cluster needs --redis`},
		{"watch without redis", func(c *Config) { c.Watch = []string{"a=b"} }, `--watch and --watch-file need --redis`},
		{"watch without key", func(c *Config) { c.Redis, c.Watch = "127.0.0.1:6379", []string{"ticker.x"} }, `--watch "ticker.x": want topic=key`},
		{"watch bad topic", func(c *Config) { c.Redis, c.Watch = "127.0.0.1:6379", []string{"a b=k"} }, `--watch "a b=k": bad topic name`},
		{"watch file missing", func(c *Config) { c.Redis, c.WatchFile = "127.0.0.1:6379", "/nonexistent/watch" }, `--watch-file: open /nonexistent/watch`},
		{"redis tls ca without tls", func(c *Config) { c.Redis, c.RedisTLSCA = "127.0.0.1:6379", "/etc/hostname" }, `--redis-tls-ca needs --redis-tls`},
		{"ws addr without port", func(c *Config) { c.WSAddr = "localhost" }, `--ws-addr "localhost": want host:port`},
		{"tcp addr port only number", func(c *Config) { c.TCPAddr = "8081" }, `--tcp-addr "8081": want host:port`},
		{"http addr empty port", func(c *Config) { c.HTTPAddr = "127.0.0.1:" }, `--http-addr "127.0.0.1:": no port`},
		{"http addr port too big", func(c *Config) { c.HTTPAddr = ":70000" }, `--http-addr ":70000": port "70000"`},
		{"debug addr", func(c *Config) { c.DebugAddr = "127.0.0.1" }, `--debug-addr "127.0.0.1": want host:port`},
		{"ws path without slash", func(c *Config) { c.WSPath = "ws" }, `--ws-path "ws": must start with /`},
		{"ws path with query", func(c *Config) { c.WSPath = "/ws?x=1" }, `--ws-path "/ws?x=1"`},
		{"negative history", func(c *Config) { c.HistorySize = -1 }, "--history-size -1: must be at least 1"},
		{"per-ip limits off", func(c *Config) { c.MaxConnsPerIP, c.ConnRatePerIP = -1, -1 }, ""},
		{"negative pub rate", func(c *Config) { c.PubRate = -3 }, "--pub-rate -3: must be 0"},
		{"engine", func(c *Config) { c.Engine = "netpoll" }, `--engine "netpoll": want one of gnet, evio, std`},
		{"bad conflate", func(c *Config) { c.Conflate = "a..b" }, "--conflate"},
		{"bad anonymous pub", func(c *Config) { c.AnonymousPub = "x,a.>.b" }, "--anonymous-pub"},
		{"origin without scheme", func(c *Config) { c.AllowedOrigins = "app.example.com" }, `--allowed-origins "app.example.com": not an origin`},
		{"origin with path", func(c *Config) { c.AllowedOrigins = "https://a.example.com/" }, `--allowed-origins "https://a.example.com/"`},
		{"origin star", func(c *Config) { c.AllowedOrigins = "*" }, `--allowed-origins "*"`},
		{"secret and key", func(c *Config) { c.JWTSecret, c.JWTKeyFile = "s", "key.pem" }, "--jwt-key and --jwt-secret"},
		{"missing key file", func(c *Config) { c.JWTKeyFile = "testdata/none.pem" }, "--jwt-key testdata/none.pem: no such file"},
		{"missing secret file", func(c *Config) { c.JWTSecretFile = "testdata/none" }, "--jwt-secret-file testdata/none: no such file"},
		{"api key file is a directory", func(c *Config) { c.APIKeyFile = "testdata" }, "--api-key-file testdata: is a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base()
			tc.set(&cfg)
			_, err := New(cfg)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("New: %v, want it accepted", err)
			case tc.want != "" && err == nil:
				t.Fatalf("New accepted it, want an error with %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("New: %q, want it to contain %q", err, tc.want)
			case err != nil && strings.Contains(err.Error(), "\n"):
				t.Fatalf("New: %q is more than one line", err)
			}
		})
	}
}

// TestPerIPDefaults: by default one address may hold half the node's
// places and open 1000 connections a second; a negative value turns a
// bound off.
func TestPerIPDefaults(t *testing.T) {
	cfg := Config{MaxConns: 1000}.withDefaults()
	if cfg.MaxConnsPerIP != 500 || cfg.ConnRatePerIP != 1000 {
		t.Fatalf("defaults: %d per IP, %d/s per IP; want 500 and 1000", cfg.MaxConnsPerIP, cfg.ConnRatePerIP)
	}
	cfg = Config{MaxConns: 1000, MaxConnsPerIP: -1, ConnRatePerIP: -1}.withDefaults()
	if cfg.MaxConnsPerIP != 0 || cfg.ConnRatePerIP != 0 {
		t.Fatalf("turned off: %d per IP, %d/s per IP; want 0 (no bound) for both", cfg.MaxConnsPerIP, cfg.ConnRatePerIP)
	}
	cfg = Config{MaxConns: 1000, MaxConnsPerIP: 7, ConnRatePerIP: 9}.withDefaults()
	if cfg.MaxConnsPerIP != 7 || cfg.ConnRatePerIP != 9 {
		t.Fatalf("given: %d per IP, %d/s per IP; want 7 and 9", cfg.MaxConnsPerIP, cfg.ConnRatePerIP)
	}
}

// TestZeroConfigMeansDefault checks that a zero field takes its value from
// DefaultConfig, that DefaultConfig leaves zero only the defaults New works
// out when it runs, and that those come out as the field comments say.
func TestZeroConfigMeansDefault(t *testing.T) {
	got, def := Config{}.withDefaults(), DefaultConfig()
	worked := map[string]bool{"MaxConns": true, "MaxConnsPerIP": true, "Loops": true, "Logger": true}
	gv, dv := reflect.ValueOf(got), reflect.ValueOf(def)
	for i := range dv.NumField() {
		name := dv.Type().Field(i).Name
		switch {
		case worked[name] && !dv.Field(i).IsZero():
			t.Errorf("DefaultConfig().%s = %v, want zero: New works it out when it runs", name, dv.Field(i))
		case worked[name]:
		case !reflect.DeepEqual(gv.Field(i).Interface(), dv.Field(i).Interface()):
			t.Errorf("Config{}.withDefaults().%s = %v, DefaultConfig().%s = %v", name, gv.Field(i), name, dv.Field(i))
		}
	}
	if want := fileLimit() - 256; got.MaxConns != want {
		t.Errorf("MaxConns %d, want the open-file limit less 256 (%d)", got.MaxConns, want)
	}
	if got.MaxConnsPerIP != got.MaxConns/2 || got.Loops != runtime.GOMAXPROCS(0) || got.Logger != slog.Default() {
		t.Errorf("MaxConnsPerIP %d, Loops %d, Logger %p; want %d, %d, slog.Default()", got.MaxConnsPerIP, got.Loops, got.Logger, got.MaxConns/2, runtime.GOMAXPROCS(0))
	}
	// Every default is its own default: giving DefaultConfig changes nothing.
	if again := def.withDefaults(); !reflect.DeepEqual(again, got) {
		t.Errorf("DefaultConfig().withDefaults() = %+v\nwant Config{}.withDefaults() = %+v", again, got)
	}
}

// TestNegativeConfig checks what a negative count or duration means: its
// default, except for the fields where it means something else.
func TestNegativeConfig(t *testing.T) {
	def := DefaultConfig()
	cfg := Config{
		MaxFrame: -1, HistorySize: -1, MaxBatch: -1, MaxPull: -1, Heartbeat: -1,
		IdleTimeout: -1, HandshakeTimeout: -1, SlowTimeout: -1, OutboxBytes: -1,
		OutboxMsgs: -1, MaxConns: -1, MaxConnsPerIP: -1, ConnRatePerIP: -1, CmdRate: -1,
		PubRate: -1, MaxSubs: -1, MaxBody: -1, MaxTopics: -1, AnonMaxFrame: -1,
		MessageTimeout: -1, InboundBytes: -1, HTTPReadTimeout: -1, HTTPIdleTimeout: -1,
		DrainTimeout: -1, WheelTick: -1, Loops: -1,
	}.withDefaults()
	if cfg.HistorySize != -1 || cfg.PubRate != -1 {
		t.Errorf("HistorySize %d, PubRate %d: want -1 kept for validate to refuse", cfg.HistorySize, cfg.PubRate)
	}
	if cfg.MaxConnsPerIP != 0 || cfg.ConnRatePerIP != 0 {
		t.Errorf("MaxConnsPerIP %d, ConnRatePerIP %d: want 0, no bound", cfg.MaxConnsPerIP, cfg.ConnRatePerIP)
	}
	if cfg.MaxConns != fileLimit()-256 || cfg.Loops != runtime.GOMAXPROCS(0) {
		t.Errorf("MaxConns %d, Loops %d: want their defaults", cfg.MaxConns, cfg.Loops)
	}
	cfg.HistorySize, cfg.PubRate, cfg.MaxConnsPerIP, cfg.ConnRatePerIP = def.HistorySize, def.PubRate, def.MaxConnsPerIP, def.ConnRatePerIP
	cfg.MaxConns, cfg.Loops, cfg.Logger = 0, 0, nil
	if !reflect.DeepEqual(cfg, def) {
		t.Errorf("negative fields became %+v\nwant their defaults %+v", cfg, def)
	}
}

// TestAnonMaxFrameAtMostMaxFrame: an unauthenticated message is never
// allowed more than any message.
func TestAnonMaxFrameAtMostMaxFrame(t *testing.T) {
	for _, tc := range []struct{ maxFrame, anon, want int }{
		{0, 0, 64 << 10},
		{1000, 0, 1000},
		{1000, 5000, 1000},
		{0, 5000, 5000},
		{1 << 30, 0, 64 << 10},
	} {
		cfg := Config{MaxFrame: tc.maxFrame, AnonMaxFrame: tc.anon}.withDefaults()
		if cfg.AnonMaxFrame != tc.want {
			t.Errorf("MaxFrame %d, AnonMaxFrame %d: got %d, want %d", tc.maxFrame, tc.anon, cfg.AnonMaxFrame, tc.want)
		}
	}
}
