package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tickfan/tickfan/auth"
	"github.com/tickfan/tickfan/codec"
	"github.com/tickfan/tickfan/server/reactor"
	"github.com/tickfan/tickfan/topic"
	"github.com/tickfan/tickfan/topic/redisbroker"
	"github.com/tickfan/tickfan/wheel"
)

// Server is one tickfan node: the reactor with its WebSocket and TCP
// listeners, the topic engine, the broker and the HTTP API.
type Server struct {
	cfg    Config
	log    *slog.Logger
	engine *topic.Engine
	broker topic.Broker
	// remote is the broker when it is Redis (its calls may block), nil
	// in memory mode; redis is the same broker as its own type.
	remote   topic.Remote
	redis    *redisbroker.Broker
	loops    []*loop
	anonPub  topic.Patterns
	metrics  *metrics
	wheel    *wheel.Wheel
	ipLimits *ipLimits
	verifier *auth.Verifier
	origins  map[string]bool // nil: any origin

	engineNet reactor.Engine // the engine: listeners and sockets
	httpLn    net.Listener
	httpSrv   *http.Server
	debug     *debugListener // nil unless Config.DebugAddr is set
	status    *statusSampler // nil when Config.StatusPageOff
	// adminLn and adminSrv serve Config.AdminAddr; nil when it is empty.
	adminLn  net.Listener
	adminSrv *http.Server
	// httpConns counts the HTTP listener's open connections (httpOpen);
	// httpDown says why it is not serving, if it is not (/readyz).
	httpConns atomic.Int64
	httpDown  reactor.DownState

	// inbound is the bytes of unhandled client input held for every
	// connection (conn.holdInput), bounded by Config.InboundBytes.
	inbound   atomic.Int64
	draining  atomic.Bool
	stopOnce  sync.Once
	reactorWG sync.WaitGroup
}

// New builds a server with the in-memory broker. Nothing listens until Start.
func New(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	conflate, err := patterns("conflate", cfg.Conflate)
	if err != nil {
		return nil, err
	}
	anonPub, err := patterns("anonymous-pub", cfg.AnonymousPub)
	if err != nil {
		return nil, err
	}
	if cfg.APIKeyFile != "" {
		if cfg.APIKey, err = secretFile("api-key-file", cfg.APIKeyFile); err != nil {
			return nil, err
		}
	}
	if cfg.JWTSecretFile != "" {
		if cfg.JWTSecret, err = secretFile("jwt-secret-file", cfg.JWTSecretFile); err != nil {
			return nil, err
		}
	}
	tc := auth.Config{Secret: []byte(cfg.JWTSecret)}
	if cfg.JWTKeyFile != "" {
		pem, err := os.ReadFile(cfg.JWTKeyFile)
		if err != nil {
			return nil, fmt.Errorf("jwt key: %w", err)
		}
		tc.KeyPEM = pem
	}
	verifier, err := auth.NewVerifier(tc)
	if err != nil {
		return nil, fmt.Errorf("jwt: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, anonPub: anonPub, verifier: verifier}
	for _, o := range strings.Split(cfg.AllowedOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			if s.origins == nil {
				s.origins = make(map[string]bool)
			}
			s.origins[strings.ToLower(o)] = true
		}
	}
	s.wheel = wheel.New(wheel.Config{Tick: cfg.WheelTick})
	s.ipLimits = newIPLimits(cfg.MaxConnsPerIP, cfg.ConnRatePerIP)
	s.loops = make([]*loop, cfg.Loops)
	for i := range s.loops {
		s.loops[i] = newLoop(i, s)
	}
	for _, l := range s.loops {
		l.refreshMarks() // once every loop exists: they read each other's counts
	}
	s.engine = topic.NewEngine(topic.EngineConfig{
		HistorySize: cfg.HistorySize,
		Loops:       cfg.Loops,
		Conflate:    conflate,
		MaxTopics:   cfg.MaxTopics,
		Held:        cfg.Redis != "",
		Idle:        s.idle,
	}, s)
	s.broker = topic.NewMemoryBroker(s.engine) // Start replaces it with Redis's, with --redis
	s.metrics = newMetrics(s)
	return s, nil
}

// idle is the engine's Idle (Held mode): the topic's last local subscriber
// left; the Redis broker lets it go after --redis-linger.
func (s *Server) idle(name string) {
	if s.redis != nil {
		s.redis.Idle(name)
	}
}

// secretFile reads a secret from the first line of a file.
func secretFile(flag, name string) (string, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return "", fmt.Errorf("--%s: %w", flag, err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	if line = strings.TrimSpace(line); line == "" {
		return "", fmt.Errorf("--%s %s: the first line is empty", flag, name)
	}
	return line, nil
}

// Enqueue implements topic.Sink: it hands p to the loop's inbox.
func (s *Server) Enqueue(loop int, p *topic.Publication) { s.loops[loop].Enqueue(p) }

// Start binds every listener and starts serving. It returns once the
// listeners are bound, or with the error that prevented it.
func (s *Server) Start() error {
	if s.cfg.Redis != "" {
		if err := s.startRedis(); err != nil {
			return err
		}
	}
	if err := s.startDebug(); err != nil {
		_ = s.broker.Close()
		return err
	}
	if err := s.listenHTTP(); err != nil {
		_ = s.closeDebug()
		_ = s.broker.Close()
		return err
	}
	s.engineNet = newEngine(s)
	if err := s.engineNet.Start(&s.reactorWG); err != nil {
		s.closeHTTPListeners()
		_ = s.closeDebug()
		_ = s.broker.Close()
		return err
	}
	if !s.cfg.StatusPageOff {
		s.startStatus()
	}
	s.serveHTTP()
	attrs := []any{"ws", "ws://" + s.WSAddr() + s.cfg.WSPath, "tcp", s.TCPAddr(), "http", "http://" + s.HTTPAddr()}
	if s.adminLn != nil {
		attrs = append(attrs, "admin", "http://"+s.AdminAddr())
	}
	s.log.Info("tickfan serving", append(attrs,
		"engine", s.cfg.Engine, "loops", s.cfg.Loops, "gomaxprocs", runtime.GOMAXPROCS(0), "history", s.cfg.HistorySize)...)
	return nil
}

// Loops returns the number of event loops.
func (s *Server) Loops() int { return len(s.loops) }

// LoopsHoldProcs reports whether the engine's event loops wait for their
// sockets in a system call that keeps their Go P (gnet, evio), rather
// than in the Go netpoller (std).
func (s *Server) LoopsHoldProcs() bool { return s.cfg.Engine != EngineStd }

// WSAddr returns the bound WebSocket address (host:port).
func (s *Server) WSAddr() string { a, _ := s.engineNet.Addrs(); return a.String() }

// TCPAddr returns the bound TCP address.
func (s *Server) TCPAddr() string { _, a := s.engineNet.Addrs(); return a.String() }

// HTTPAddr returns the bound HTTP address.
func (s *Server) HTTPAddr() string { return s.httpLn.Addr().String() }

// allowOrigin checks a browser's Origin header against --allowed-origins.
func (s *Server) allowOrigin(origin []byte) bool {
	return s.origins[strings.ToLower(string(origin))]
}

// admit applies the connection limits to a new connection: past one it is
// told 4006 (a WebSocket once its upgrade is done) and closed.
func (s *Server) admit(c *conn) {
	reason := ""
	if s.openConns()+s.httpOpen() > int64(s.cfg.MaxConns) {
		reason = "max_conns"
	} else if reason = s.ipLimits.admit(c.ip, s.wheel.NowNano()/1e9); reason == "" {
		c.admitted = true
		return
	}
	s.metrics.rejectedConns.WithLabelValues(reason).Inc()
	if c.kind == reactor.TCP {
		c.closeWith(codec.DisconnectTooManyConns)
		c.l.flush()
		return
	}
	c.rejected = true
}

// Drain makes the node leave service gracefully: /readyz answers 503 at
// once, new connections are closed as they arrive, every client gets
// {"op":"close","code":4007} (over WebSocket with a close frame of the same
// code) so that it reconnects elsewhere, and Drain returns when all clients
// have gone or after Config.DrainTimeout, whichever comes first. Shutdown
// then closes what remains.
func (s *Server) Drain() {
	s.draining.Store(true)
	s.stopStatus() // its streams are HTTP requests that would not end
	for _, l := range s.loops {
		l.requestDrain()
	}
	deadline := time.Now().Add(s.cfg.DrainTimeout)
	for s.openConns() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
}

// openConns is the number of connections open on every loop.
func (s *Server) openConns() int64 {
	var n int64
	for _, l := range s.loops {
		n += l.open.Load()
	}
	return n
}

// Shutdown stops the listeners, closes every connection and waits for the
// reactor to stop or ctx to end.
func (s *Server) Shutdown(ctx context.Context) error {
	var err error
	s.stopOnce.Do(func() {
		s.draining.Store(true)
		s.stopStatus()
		if s.httpSrv != nil {
			err = errors.Join(err, s.httpSrv.Shutdown(ctx))
		}
		if s.adminSrv != nil {
			err = errors.Join(err, s.adminSrv.Shutdown(ctx))
		}
		err = errors.Join(err, s.closeDebug())
		if s.engineNet != nil {
			err = errors.Join(err, s.engineNet.Stop(ctx))
		}
		done := make(chan struct{})
		go func() { s.reactorWG.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			err = errors.Join(err, ctx.Err())
		}
		if s.status != nil {
			<-s.status.done
		}
		err = errors.Join(err, s.broker.Close())
		s.wheel.Close()
		s.stageReport()
	})
	return err
}
