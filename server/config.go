package server

import (
	"log/slog"
	"time"
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
	// AdminAddr, when set, serves /metrics and the status page (with
	// /api/status and its stream) there instead of on HTTPAddr, which then carries only the publish API and
	// the health checks. Default empty.
	AdminAddr string
	// StatusPageOff turns the live status page off: / and /api/status
	// (and its stream) then answer 404, while /metrics, /healthz and
	// /readyz stay. Default false: the page is served where /metrics is.
	StatusPageOff bool
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
	// BusyPoll, when more than 0, has each event loop poll its sockets
	// without sleeping for that long after each burst of work (gnet only,
	// at most MaxBusyPoll): a client's message is then taken without the
	// kernel waking the loop, for the price of that much CPU after every
	// burst. For loops with cores of their own. Default 0: off.
	BusyPoll time.Duration

	// Redis, when set, shares topics with other nodes through Redis:
	// host:port[,host:port...], one server or the seeds of a cluster
	// (detected). Default empty: the node keeps its topics in memory.
	Redis string
	// RedisCluster insists on Redis Cluster (refused when the server is not).
	RedisCluster bool
	// RedisUser and RedisPassword authenticate to Redis (AUTH, ACL user);
	// RedisPasswordFile, when set, holds the password on its first line.
	RedisUser         string
	RedisPassword     string
	RedisPasswordFile string
	// RedisTLS connects to Redis over TLS, verified with the system's
	// roots or RedisTLSCA (a PEM file) and RedisTLSServerName.
	RedisTLS           bool
	RedisTLSCA         string
	RedisTLSServerName string
	// RedisTimeout bounds each call to Redis. Default 3 s.
	RedisTimeout time.Duration
	// RedisLinger is how long the node follows a topic's channel after
	// its last local subscriber left. Default 5 s.
	RedisLinger time.Duration
	// RedisProbe is how often each Redis subscription connection is probed
	// (a publication to the node's probe channel that must come back
	// within two intervals). Default 1 s.
	RedisProbe time.Duration
	// Watch lists topic=key pairs: the Redis key's value is published as
	// a snapshot of the topic whenever it changes. WatchFile adds the
	// pairs of a file, one a line (# comments). Needs Redis.
	Watch     []string
	WatchFile string
	// WatchInterval is how often the watched keys are read (all in one
	// round trip). Default 100 ms.
	WatchInterval time.Duration
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
		RedisTimeout:     3 * time.Second,
		RedisLinger:      5 * time.Second,
		RedisProbe:       time.Second,
		WatchInterval:    100 * time.Millisecond,
	}
}
