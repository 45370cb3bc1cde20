package redisbroker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"github.com/tickfan/tickfan/topic"
)

// Config configures a Broker.
type Config struct {
	// Addrs are Redis addresses (host:port): one server, or seeds of a
	// cluster.
	Addrs []string
	// Cluster insists on Redis Cluster; without it the mode is detected
	// from the server.
	Cluster  bool
	Username string
	Password string
	// TLS, when set, is used for every connection to Redis.
	TLS *tls.Config
	// HistorySize is the length of each topic's stream (topic.Engine's
	// history size). Zero means 1000; a negative value keeps none.
	HistorySize int
	// Linger is how long a topic stays followed after its last local
	// subscriber left. Zero means 5 s.
	Linger time.Duration
	// Probe is how often each subscription connection is probed; a probe
	// not back within two intervals rebuilds it. Zero means 1 s.
	Probe time.Duration
	// Timeout bounds each call to Redis. Zero means 3 s.
	Timeout time.Duration
	// PlaceholderTTL is how long the hash of a topic nobody published to,
	// created when a node follows it, lives once no node follows it: the
	// nodes that do renew it every third of it. Zero means 1 min.
	PlaceholderTTL time.Duration
	// Watch lists Redis keys whose values are published as snapshots of
	// topics when they change, read every WatchInterval (zero: 100 ms).
	Watch         []Watch
	WatchInterval time.Duration
	Logger        *slog.Logger
}

// Watch is one watched key: its value, when it changes, is published as a
// snapshot of Topic.
type Watch struct {
	Topic string
	Key   string
}

// Shards is how many goroutines place publications; a topic is always
// placed by the same one, so its publications keep their order.
const Shards = 4

// maxBatch bounds the publications one pipeline carries.
const maxBatch = 4096

// Broker is the Redis topic.Broker. Its engine must be in Held mode.
type Broker struct {
	cfg      Config
	engine   *topic.Engine
	rc       rueidis.Client
	cluster  bool
	pubLua   script
	readLua  script
	touchLua script
	log      *slog.Logger
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	seed     maphash.Seed

	pubs [Shards]pubShard

	mu      sync.Mutex
	follows map[string]*follow
	// live indexes the follows in state live, for the channel's
	// goroutines to find without mu (setState and forget keep it).
	live    sync.Map
	toSub   map[string]*follow // to be subscribed
	toUnsub map[string]struct{}
	toRead  map[string]*follow // to be read (loaded or repaired)
	subKick chan struct{}
	rdKick  chan struct{}
	shards  []*shard
	slots   []slotRange // cluster: which shard serves which slots
	remapMu sync.Mutex

	// down is why the last call to Redis failed, while no later one has
	// succeeded ("" when up).
	down   atomic.Pointer[string]
	stats  Stats
	closed atomic.Bool
}

// Stats counts what the broker did, for metrics and tests.
type Stats struct {
	Published, Refused, Received, Gaps, Reads, ReadTopics, Rebuilds, ProbesLost atomic.Uint64
	// Pipelines counts the pipelines that carried publications.
	Pipelines atomic.Uint64
}

// pubShard is one publishing goroutine's queue.
type pubShard struct {
	mu   sync.Mutex
	q    []pubReq
	kick chan struct{}
}

type pubReq struct {
	r     topic.PublishRequest
	watch bool
	done  func(topic.Position, error)
}

// New connects to Redis and starts the broker. engine must be in Held
// mode, with Idle calling the returned broker's Idle.
func New(cfg Config, engine *topic.Engine) (*Broker, error) {
	if len(cfg.Addrs) == 0 {
		return nil, errors.New("redis: no address")
	}
	if cfg.HistorySize == 0 {
		cfg.HistorySize = 1000
	}
	if cfg.Linger <= 0 {
		cfg.Linger = 5 * time.Second
	}
	if cfg.Probe <= 0 {
		cfg.Probe = time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 3 * time.Second
	}
	if cfg.PlaceholderTTL <= 0 {
		cfg.PlaceholderTTL = time.Minute
	}
	if cfg.WatchInterval <= 0 {
		cfg.WatchInterval = 100 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	opt := rueidis.ClientOption{
		InitAddress:  cfg.Addrs,
		Username:     cfg.Username,
		Password:     cfg.Password,
		TLSConfig:    cfg.TLS,
		DisableCache: true,
		// A short flush delay lets concurrent commands share a write.
		MaxFlushDelay:    20 * time.Microsecond,
		ConnWriteTimeout: cfg.Timeout,
		Dialer:           net.Dialer{Timeout: cfg.Timeout},
		DisableRetry:     true, // a publication is never sent twice
		// One connection per Redis node: Redis runs commands on one thread
		// and the connection pipelines, so more only adds connections that
		// may be found broken one after another after an outage; with one,
		// the probe that passes proves the connection publications take.
		PipelineMultiplex: -1,
		// A connection always read in the background: one that Redis
		// closed (a restart) is known dead at once, not by the
		// publication that next takes it.
		AlwaysPipelining: true,
	}
	rc, err := rueidis.NewClient(opt)
	if err != nil {
		return nil, fmt.Errorf("redis %s: %w", strings.Join(cfg.Addrs, ","), err)
	}
	cluster := rc.Mode() == rueidis.ClientModeCluster
	if cfg.Cluster && !cluster {
		rc.Close()
		return nil, fmt.Errorf("redis %s: --redis-cluster given, but the server is not a cluster", strings.Join(cfg.Addrs, ","))
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Broker{
		cfg: cfg, engine: engine, rc: rc, cluster: cluster,
		pubLua: newScript(publishLua), readLua: newScript(readLua), touchLua: newScript(touchLua),
		log: cfg.Logger.With("component", "redis"), ctx: ctx, cancel: cancel, seed: maphash.MakeSeed(),
		follows: make(map[string]*follow), toSub: make(map[string]*follow),
		toUnsub: make(map[string]struct{}), toRead: make(map[string]*follow),
		subKick: make(chan struct{}, 1), rdKick: make(chan struct{}, 1),
	}
	if err := b.loadScripts(ctx); err != nil {
		rc.Close()
		return nil, fmt.Errorf("redis: loading the scripts: %w", err)
	}
	if err := b.startShards(); err != nil {
		rc.Close()
		return nil, err
	}
	for i := range b.pubs {
		b.pubs[i].kick = make(chan struct{}, 1)
		b.run(func() { b.publisher(&b.pubs[i]) })
	}
	b.run(b.subscriber)
	b.run(b.reader)
	b.run(b.housekeeper)
	if len(cfg.Watch) > 0 {
		b.run(b.watcher)
	}
	return b, nil
}

func (b *Broker) run(fn func()) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		fn()
	}()
}

// Cluster reports whether the broker runs on Redis Cluster.
func (b *Broker) Cluster() bool { return b.cluster }

// Stats returns the broker's counters.
func (b *Broker) Stats() *Stats { return &b.stats }

// Shards returns how many subscription connections the broker keeps (one,
// or one per master of a cluster) and how many of them are up and pass
// their probes.
func (b *Broker) Shards() (up, total int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range b.shards {
		if s.notReady() == "" {
			up++
		}
	}
	return up, len(b.shards)
}

// loadScripts loads both scripts on every node (again after NOSCRIPT: a
// restarted or flushed Redis forgets them).
func (b *Broker) loadScripts(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	for _, n := range b.rc.Nodes() {
		for _, s := range []script{b.pubLua, b.readLua, b.touchLua} {
			if err := n.Do(ctx, n.B().ScriptLoad().Script(s.src).Build()).Error(); err != nil {
				return err
			}
		}
	}
	return nil
}

// Ready implements topic.Broker: nil while Redis answers and every
// subscription connection is up and passes its probes.
func (b *Broker) Ready() error {
	if why := b.down.Load(); why != nil && *why != "" {
		return fmt.Errorf("%w: redis: %s", topic.ErrUnavailable, *why)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range b.shards {
		if why := s.notReady(); why != "" {
			return fmt.Errorf("%w: redis subscription %s: %s", topic.ErrUnavailable, s.addr, why)
		}
	}
	return nil
}

// fail records a failed call; a Redis error reply is an answer, not an
// outage.
func (b *Broker) fail(err error) error {
	if _, ok := rueidis.IsRedisErr(err); ok || errors.Is(err, topic.ErrUnavailable) {
		return err
	}
	why := err.Error()
	b.down.Store(&why)
	return fmt.Errorf("%w: %v", topic.ErrUnavailable, err)
}

// unavailable records a failure that leaves Redis unusable whatever its
// kind (a script that cannot be loaded).
func (b *Broker) unavailable(what string, err error) error {
	why := what + ": " + err.Error()
	b.down.Store(&why)
	return fmt.Errorf("%w: %s", topic.ErrUnavailable, why)
}

func (b *Broker) ok() {
	if p := b.down.Load(); p != nil && *p != "" {
		b.down.Store(nil)
	}
}

// Close implements topic.Broker.
func (b *Broker) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	b.cancel()
	b.mu.Lock()
	shards := b.shards
	b.mu.Unlock()
	for _, s := range shards {
		s.close()
	}
	b.rc.Close()
	b.wg.Wait()
	return nil
}
