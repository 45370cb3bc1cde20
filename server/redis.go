package server

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tickfan/tickfan/topic"
	"github.com/tickfan/tickfan/topic/redisbroker"
)

// redisDefaults fills the Redis settings left zero or negative.
func (cfg *Config) redisDefaults() {
	d := DefaultConfig()
	positive(&cfg.RedisTimeout, d.RedisTimeout)
	positive(&cfg.RedisLinger, d.RedisLinger)
	positive(&cfg.RedisProbe, d.RedisProbe)
	positive(&cfg.WatchInterval, d.WatchInterval)
}

// validateRedis checks the Redis settings without connecting.
func (cfg Config) validateRedis() error {
	if cfg.Redis == "" {
		switch {
		case cfg.RedisCluster:
			return fmt.Errorf("--redis-cluster needs --redis")
		case len(cfg.Watch) > 0 || cfg.WatchFile != "":
			return fmt.Errorf("--watch and --watch-file need --redis (the watched keys are Redis keys)")
		}
		return nil
	}
	for _, a := range redisAddrs(cfg.Redis) {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" || port == "0" {
			return fmt.Errorf("--redis %q: want host:port[,host:port...], e.g. 127.0.0.1:6379", cfg.Redis)
		}
	}
	if _, err := cfg.watches(); err != nil {
		return err
	}
	if cfg.RedisPasswordFile != "" {
		if _, err := secretFile("redis-password-file", cfg.RedisPasswordFile); err != nil {
			return err
		}
	}
	if cfg.RedisTLSCA != "" && !cfg.RedisTLS {
		return fmt.Errorf("--redis-tls-ca needs --redis-tls")
	}
	return nil
}

func redisAddrs(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// watches parses --watch and --watch-file into topic and key pairs.
func (cfg Config) watches() ([]redisbroker.Watch, error) {
	var out []redisbroker.Watch
	add := func(where, pair string) error {
		t, k, ok := strings.Cut(strings.TrimSpace(pair), "=")
		t, k = strings.TrimSpace(t), strings.TrimSpace(k)
		if !ok || k == "" {
			return fmt.Errorf("%s %q: want topic=key", where, pair)
		}
		if err := topic.ValidName(t); err != nil {
			return fmt.Errorf("%s %q: %w", where, pair, err)
		}
		out = append(out, redisbroker.Watch{Topic: t, Key: k})
		return nil
	}
	for _, w := range cfg.Watch {
		if err := add("--watch", w); err != nil {
			return nil, err
		}
	}
	if cfg.WatchFile != "" {
		f, err := os.Open(cfg.WatchFile)
		if err != nil {
			return nil, fmt.Errorf("--watch-file: %w", err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			if err := add(fmt.Sprintf("--watch-file %s line %d:", cfg.WatchFile, n), line); err != nil {
				return nil, err
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("--watch-file: %w", err)
		}
	}
	return out, nil
}

// startRedis connects the Redis broker (Start).
func (s *Server) startRedis() error {
	cfg := s.cfg
	watch, err := cfg.watches()
	if err != nil {
		return err
	}
	bc := redisbroker.Config{
		Addrs: redisAddrs(cfg.Redis), Cluster: cfg.RedisCluster,
		Username: cfg.RedisUser, Password: cfg.RedisPassword,
		HistorySize: cfg.HistorySize, Linger: cfg.RedisLinger, Probe: cfg.RedisProbe, Timeout: cfg.RedisTimeout,
		Watch: watch, WatchInterval: cfg.WatchInterval, Logger: s.log,
	}
	if cfg.RedisPasswordFile != "" {
		if bc.Password, err = secretFile("redis-password-file", cfg.RedisPasswordFile); err != nil {
			return err
		}
	}
	if cfg.RedisTLS {
		bc.TLS = &tls.Config{ServerName: cfg.RedisTLSServerName, MinVersion: tls.VersionTLS12}
		if cfg.RedisTLSCA != "" {
			pem, err := os.ReadFile(cfg.RedisTLSCA)
			if err != nil {
				return fmt.Errorf("--redis-tls-ca: %w", err)
			}
			bc.TLS.RootCAs = x509.NewCertPool()
			if !bc.TLS.RootCAs.AppendCertsFromPEM(pem) {
				return fmt.Errorf("--redis-tls-ca %s: no PEM certificate in it", cfg.RedisTLSCA)
			}
		}
	}
	b, err := redisbroker.New(bc, s.engine)
	if err != nil {
		return err
	}
	s.redis = b
	s.broker, s.remote = b, b
	return nil
}

// redisMetrics are the Redis broker's counters, read at each scrape.
func redisMetrics(s *Server) []prometheus.Collector {
	stat := func(get func(st *redisbroker.Stats) uint64) func() float64 {
		return func() float64 {
			if s.redis == nil {
				return 0
			}
			return float64(get(s.redis.Stats()))
		}
	}
	counter := func(name, help string, get func(st *redisbroker.Stats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, stat(get))
	}
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tickfan_redis_up", Help: "1 while Redis answers and every subscription connection passes its probes (/readyz), else 0.",
		}, func() float64 {
			if s.redis == nil || s.redis.Ready() != nil {
				return 0
			}
			return 1
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tickfan_redis_topics_followed", Help: "Topics whose Redis channel this node follows (local subscribers, or within --redis-linger of the last).",
		}, func() float64 {
			if s.redis == nil {
				return 0
			}
			return float64(s.redis.Following())
		}),
		counter("tickfan_redis_published_total", "Publications placed in Redis by this node.", func(st *redisbroker.Stats) uint64 { return st.Published.Load() }),
		counter("tickfan_redis_watch_unchanged_total", "Watched-key snapshots Redis refused as equal to the stored one (another node published it).", func(st *redisbroker.Stats) uint64 { return st.Refused.Load() }),
		counter("tickfan_redis_publish_pipelines_total", "Pipelines that carried this node's publications to Redis (a burst shares one).", func(st *redisbroker.Stats) uint64 { return st.Pipelines.Load() }),
		counter("tickfan_redis_received_total", "Publications received on followed Redis channels.", func(st *redisbroker.Stats) uint64 { return st.Received.Load() }),
		counter("tickfan_redis_repairs_total", "Topics read again from their Redis stream after a seq gap, another epoch or a rebuilt subscription connection.", func(st *redisbroker.Stats) uint64 { return st.Gaps.Load() }),
		counter("tickfan_redis_reads_total", "Pipelines of topic reads sent to Redis (each carries every topic waiting to be read).", func(st *redisbroker.Stats) uint64 { return st.Reads.Load() }),
		counter("tickfan_redis_read_topics_total", "Topics read from Redis.", func(st *redisbroker.Stats) uint64 { return st.ReadTopics.Load() }),
		counter("tickfan_redis_connects_total", "Redis subscription connections made (again after a loss).", func(st *redisbroker.Stats) uint64 { return st.Rebuilds.Load() }),
		counter("tickfan_redis_probes_lost_total", "Probes that did not come back in time (the connection was made again).", func(st *redisbroker.Stats) uint64 { return st.ProbesLost.Load() }),
	}
}
