package server

import (
	"io"
	"log/slog"
	"strings"
	"testing"
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
