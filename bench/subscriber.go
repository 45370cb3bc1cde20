package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/gobwas/ws"
	"github.com/panjf2000/gnet/v2"
	"github.com/panjf2000/gnet/v2/pkg/logging"

	"github.com/tickfan/tickfan/client"
)

// pool is a set of subscriber connections served by one gnet client: a
// few event loops, not a goroutine per connection. Connections are opened
// with a blocking dial and handshake (by a bounded set of dialers), then
// enrolled in the client's loops, which parse everything they receive.
//
// Each connection belongs to a shard. The shard's mutex guards the
// connection's state, the shard's histogram and counters; a loop takes it
// once per read, and the run's goroutine takes it to read or reset figures.
type pool struct {
	gnet.BuiltinEventEngine

	proto   Proto
	dialCfg client.Config
	clock   *clock
	cli     *gnet.Client

	shards []*shard
	conns  []*subConn

	// The measured window, ns on the clock: a publication due in it has its
	// latency recorded; a delivery arriving in it counts as throughput.
	winStart, winEnd atomic.Int64

	delivered  atomic.Int64 // in-order deliveries, all time
	replies    atomic.Int64 // sub replies, ok or not
	recovered  atomic.Int64 // sub replies with since: rec true
	notRec     atomic.Int64 // sub replies with since: rec false
	closed     atomic.Int64 // connections closed (OnClose)
	serverShut atomic.Int64 // {"op":"close"} received
	errs       atomic.Int64 // error replies and broken streams
	firstErr   atomic.Pointer[string]
}

// shard is a lock and the figures of the connections under it.
type shard struct {
	mu       sync.Mutex
	hist     *hdrhistogram.Histogram // latency from due
	histSent *hdrhistogram.Histogram // latency from sent
	received int64                   // deliveries of publications due in the window
	arrivals int64                   // deliveries that arrived in the window
	unknown  int64                   // publications of a topic the connection does not hold
}

const shardCount = 16

func newShard() *shard { return &shard{hist: newHistogram(), histSent: newHistogram()} }

// subConn is one subscriber connection, kept across reconnects (herd).
// Every field after sh is guarded by sh.mu.
type subConn struct {
	p  *pool
	id int
	sh *shard

	gc        gnet.Conn
	tracks    []track
	subID     uint64
	sinceSent bool
	replied   bool
	replyErr  string
	open      bool
	closeCode int
	subSentAt int64
	repliedAt int64
}

// clock is the run's time base: ns since its epoch on the monotonic clock.
// Publications carry their due time on it.
type clock struct{ epoch time.Time }

func newClock() *clock                 { return &clock{epoch: time.Now()} }
func (c *clock) now() int64            { return int64(time.Since(c.epoch)) }
func (c *clock) at(ns int64) time.Time { return c.epoch.Add(time.Duration(ns)) }

// gnetLogger keeps gnet's logs off stdout (the results go there) and drops
// everything below warnings.
type gnetLogger struct{ w io.Writer }

func (l gnetLogger) Debugf(string, ...any) {}
func (l gnetLogger) Infof(string, ...any)  {}
func (l gnetLogger) Warnf(f string, a ...any) {
	fmt.Fprintf(l.w, "bench: gnet: "+f+"\n", a...)
}
func (l gnetLogger) Errorf(f string, a ...any) {
	fmt.Fprintf(l.w, "bench: gnet: "+f+"\n", a...)
}
func (l gnetLogger) Fatalf(f string, a ...any) {
	fmt.Fprintf(l.w, "bench: gnet: "+f+"\n", a...)
}

// newPool starts a gnet client with loops event loops (0: one per CPU this
// process may run on).
func newPool(cfg *Config, proto Proto, clk *clock) (*pool, error) {
	p := &pool{proto: proto, dialCfg: cfg.dialConfig(proto, 0), clock: clk}
	p.winStart.Store(math64Max)
	p.winEnd.Store(math64Max)
	for range shardCount {
		p.shards = append(p.shards, newShard())
	}
	opts := []gnet.Option{
		gnet.WithMulticore(true),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		gnet.WithLogger(gnetLogger{cfg.logw()}),
		gnet.WithLogLevel(logging.WarnLevel),
	}
	if cfg.Loops > 0 {
		opts = append(opts, gnet.WithNumEventLoop(cfg.Loops))
	}
	cli, err := gnet.NewClient(p, opts...)
	if err != nil {
		return nil, fmt.Errorf("gnet client: %w", err)
	}
	if err := cli.Start(); err != nil {
		return nil, fmt.Errorf("gnet client: %w", err)
	}
	p.cli = cli
	return p, nil
}

const math64Max = int64(^uint64(0) >> 1)

// setWindow sets the measured window [start, end) on the clock.
func (p *pool) setWindow(start, end int64) {
	p.winStart.Store(start)
	p.winEnd.Store(end)
}

// add creates n connection slots, the i-th holding topics(i).
func (p *pool) add(n int, topics func(i int) []string) {
	for range n {
		i := len(p.conns)
		sc := &subConn{p: p, id: i, sh: p.shards[i%shardCount]}
		for _, t := range topics(i) {
			sc.tracks = append(sc.tracks, track{topic: t})
		}
		p.conns = append(p.conns, sc)
	}
}

// dialAll opens (or reopens) every connection and sends its sub, with
// withSince asking to recover from where each topic was left. Up to
// parallel dials run at once. It returns when every connection is enrolled
// (not when every reply has come: see waitReplies) or at the first error.
func (p *pool) dialAll(ctx context.Context, parallel int, subscribe, withSince bool) error {
	return inParallel(ctx, len(p.conns), parallel, func(ctx context.Context, i int) error {
		return p.dial(ctx, p.conns[i], subscribe, withSince)
	})
}

// inParallel runs do(ctx, i) for i from 0 to n-1, parallel at a time, and
// returns the first error (the others are not started, ctx is cancelled
// for those running) or ctx's.
func inParallel(ctx context.Context, n, parallel int, do func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range min(parallel, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := do(ctx, i); err != nil {
					once.Do(func() { firstErr = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

func (p *pool) dial(ctx context.Context, sc *subConn, subscribe, withSince bool) error {
	nc, err := client.DialNet(ctx, p.dialCfg)
	if err != nil {
		return err
	}
	var out []byte
	sc.sh.mu.Lock()
	sc.subID++
	sc.replied, sc.replyErr, sc.open, sc.closeCode = false, "", true, 0
	sc.sinceSent = false
	if subscribe {
		topics := make([]string, len(sc.tracks))
		var since map[string]client.Position
		for i := range sc.tracks {
			t := &sc.tracks[i]
			topics[i] = t.topic
			if withSince && t.started {
				if since == nil {
					since = map[string]client.Position{}
				}
				since[t.topic] = client.Position{E: t.epoch, S: t.last}
			}
		}
		sc.sinceSent = since != nil
		out = p.proto.AppendSub(nil, sc.subID, topics, since)
		sc.subSentAt = p.clock.now()
	}
	sc.sh.mu.Unlock()
	if out != nil {
		_ = nc.SetWriteDeadline(time.Now().Add(dialTimeout))
		if _, err := nc.Write(out); err != nil {
			nc.Close()
			return fmt.Errorf("send sub: %w", err)
		}
	}
	// The reply may already be in the socket; the loop reads it once the
	// connection is enrolled (level-triggered).
	gc, err := p.cli.EnrollContext(nc, sc)
	if err != nil {
		return fmt.Errorf("enroll connection in the event loop: %w", err)
	}
	sc.sh.mu.Lock()
	sc.gc = gc
	sc.sh.mu.Unlock()
	return nil
}

// waitFor polls cond every 10 ms until it holds, ctx ends or timeout
// passes; it reports whether cond held.
func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// waitReplies waits until n more sub replies than before have come.
func (p *pool) waitReplies(ctx context.Context, before int64, n int, timeout time.Duration) error {
	if waitFor(ctx, timeout, func() bool { return p.replies.Load()-before >= int64(n) }) {
		return nil
	}
	got := p.replies.Load() - before
	msg := ""
	if e := p.firstErr.Load(); e != nil {
		msg = " (first error: " + *e + ")"
	}
	return fmt.Errorf("%d of %d sub replies within %v, %d connections closed%s", got, n, timeout, p.closed.Load(), msg)
}

// closeAll closes every open connection with SO_LINGER 0 (a reset, so that
// tens of thousands of closes leave no ports in TIME_WAIT) and waits until
// the loops have seen them closed.
func (p *pool) closeAll(ctx context.Context, timeout time.Duration) error {
	before := p.closed.Load()
	n := 0
	for _, sc := range p.conns {
		sc.sh.mu.Lock()
		gc, open := sc.gc, sc.open
		sc.sh.mu.Unlock()
		if gc != nil && open {
			_ = gc.SetLinger(0)
			_ = gc.Close()
			n++
		}
	}
	if !waitFor(ctx, timeout, func() bool { return p.closed.Load()-before >= int64(n) }) {
		return fmt.Errorf("%d of %d connections closed within %v", p.closed.Load()-before, n, timeout)
	}
	return nil
}

// stop closes every connection and the client's loops.
func (p *pool) stop() {
	_ = p.closeAll(context.Background(), 5*time.Second)
	_ = p.cli.Stop()
}

// eachTrack calls f with every track of every connection, under the
// connection's lock.
func (p *pool) eachTrack(f func(*track)) {
	for _, sc := range p.conns {
		sc.sh.mu.Lock()
		for i := range sc.tracks {
			f(&sc.tracks[i])
		}
		sc.sh.mu.Unlock()
	}
}

// windowFigures takes (and clears) what the shards gathered for the
// window: the merged histograms of latency from due and from sent, and
// the counts.
func (p *pool) windowFigures() (h, hSent *hdrhistogram.Histogram, received, arrivals, unknown int64) {
	return takeWindow(p.shards)
}

// takeWindow merges and clears the shards' window figures.
func takeWindow(shards []*shard) (h, hSent *hdrhistogram.Histogram, received, arrivals, unknown int64) {
	h, hSent = newHistogram(), newHistogram()
	for _, sh := range shards {
		sh.mu.Lock()
		h.Merge(sh.hist)
		sh.hist.Reset()
		hSent.Merge(sh.histSent)
		sh.histSent.Reset()
		received += sh.received
		arrivals += sh.arrivals
		unknown += sh.unknown
		sh.received, sh.arrivals, sh.unknown = 0, 0, 0
		sh.mu.Unlock()
	}
	return h, hSent, received, arrivals, unknown
}

// subscribers returns, per topic, how many connections hold it.
func (p *pool) subscribers() map[string]int64 {
	m := map[string]int64{}
	for _, sc := range p.conns {
		for i := range sc.tracks {
			m[sc.tracks[i].topic]++ // topics are set once, before dialing
		}
	}
	return m
}

func (p *pool) noteErr(msg string) {
	p.errs.Add(1)
	p.firstErr.CompareAndSwap(nil, &msg)
}

// OnClose runs on the connection's loop.
func (p *pool) OnClose(c gnet.Conn, _ error) gnet.Action {
	sc, ok := c.Context().(*subConn)
	if !ok {
		return gnet.None
	}
	sc.sh.mu.Lock()
	if sc.gc == nil || sc.gc == c {
		sc.open = false
	}
	sc.sh.mu.Unlock()
	p.closed.Add(1)
	return gnet.None
}

// OnTraffic runs on the connection's loop: it parses every whole frame
// received, under the shard's lock, and answers pings.
func (p *pool) OnTraffic(c gnet.Conn) gnet.Action {
	sc := c.Context().(*subConn)
	buf, _ := c.Peek(-1)
	now := p.clock.now()
	ws, we := p.winStart.Load(), p.winEnd.Load()
	sc.sh.mu.Lock()
	n, out, delivered, err := sc.consume(buf, now, ws, we)
	sc.sh.mu.Unlock()
	if delivered > 0 {
		p.delivered.Add(delivered)
	}
	_, _ = c.Discard(n)
	if len(out) > 0 {
		_, _ = c.Write(out)
	}
	if err != nil {
		if !errors.Is(err, errServerClosed) {
			p.noteErr(fmt.Sprintf("connection %d: %v", sc.id, err))
		}
		return gnet.Close
	}
	return gnet.None
}

var errServerClosed = errors.New("server closed the connection")

// consume parses the whole frames at the front of b and returns how many
// bytes they took, what to send back (pongs), and how many in-order
// deliveries they held. It runs under sc.sh.mu.
func (sc *subConn) consume(b []byte, now, winStart, winEnd int64) (n int, out []byte, delivered int64, err error) {
	proto := sc.p.proto
	mp := proto.Msgpack()
	for {
		fr, size, err := proto.ParseFrame(b[n:])
		if err != nil || size == 0 {
			return n, out, delivered, err
		}
		n += size
		switch fr.Op {
		case ws.OpText, ws.OpBinary:
		case ws.OpPing:
			out = client.AppendPong(out, fr.Payload)
			continue
		case ws.OpClose:
			return n, out, delivered, errServerClosed
		case ws.OpPong:
			continue
		default:
			return n, out, delivered, fmt.Errorf("unexpected frame opcode %d", fr.Op)
		}
		if pub, ok := client.ScanPublication(fr.Payload, mp); ok {
			due, sent := payloadTimes(pub.Data, mp)
			if sc.publication(pub.Topic, pub.Seq, due, sent, now, winStart, winEnd) {
				delivered++
			}
			continue
		}
		keepalive, closing, err := sc.control(fr.Payload)
		if err != nil {
			return n, out, delivered, err
		}
		if keepalive {
			out = proto.AppendKeepalive(out)
		}
		if closing {
			return n, out, delivered, errServerClosed
		}
	}
}

// publication accounts one publication and reports whether it was a
// delivery (new, in order). sent is 0 when the payload did not carry it.
func (sc *subConn) publication(topic []byte, seq uint64, due, sent, now, ws, we int64) bool {
	var t *track
	for i := range sc.tracks {
		if sc.tracks[i].topic == string(topic) {
			t = &sc.tracks[i]
			break
		}
	}
	if t == nil {
		sc.sh.unknown++
		return false
	}
	if !t.pub(seq) {
		return false
	}
	if due >= ws && due < we {
		recordLatency(sc.sh.hist, now-due)
		if sent > 0 {
			recordLatency(sc.sh.histSent, now-sent)
		}
		sc.sh.received++
	}
	if now >= ws && now < we {
		sc.sh.arrivals++
	}
	return true
}

// control handles a message that is not a publication. It reports
// whether to answer a TCP heartbeat (any message is life) and whether the
// server is closing.
func (sc *subConn) control(body []byte) (keepalive, closing bool, err error) {
	m, err := client.Decode(body, sc.p.proto.Msgpack())
	if err != nil {
		return false, false, err
	}
	switch m.Kind {
	case client.KindReply:
	case client.KindReset:
		if t := sc.track(m.Topic); t != nil {
			t.reset(m.Epoch, m.Seq)
		}
		return false, false, nil
	case client.KindLag:
		if t := sc.track(m.Topic); t != nil {
			t.lags++
		}
		return false, false, nil
	case client.KindClose:
		sc.closeCode = m.Code
		sc.p.serverShut.Add(1)
		sc.p.noteErr(fmt.Sprintf("connection %d: server closed it with %d %s", sc.id, m.Code, m.Reason))
		return false, true, nil
	case client.KindPing:
		return sc.p.proto == ProtoTCP, false, nil
	default:
		return false, false, nil
	}
	if m.ID == 0 || m.ID != sc.subID || sc.replied {
		if m.Err != nil {
			sc.p.noteErr(fmt.Sprintf("connection %d: %v", sc.id, m.Err))
		}
		return false, false, nil // the answer to a ping, or a stale reply
	}
	sc.replied = true
	sc.repliedAt = sc.p.clock.now()
	defer sc.p.replies.Add(1)
	if m.Err != nil {
		sc.replyErr = m.Err.Error()
		sc.p.noteErr(fmt.Sprintf("connection %d: sub: %v", sc.id, m.Err))
		return false, false, nil
	}
	var res map[string]client.SubResult
	if err := m.DecodeRes(&res); err != nil {
		return false, false, fmt.Errorf("sub reply %q: %w", client.Clip(body), err)
	}
	for name, r := range res {
		t := sc.track(name)
		if t == nil {
			continue
		}
		if sc.sinceSent {
			if r.Rec {
				sc.p.recovered.Add(1)
			} else {
				sc.p.notRec.Add(1)
			}
		}
		switch {
		case sc.sinceSent && t.started:
			// rec true: the missed publications follow; rec false: a
			// reset follows and says where we stand.
		default:
			t.epoch, t.last, t.started = r.E, r.S, true
		}
	}
	return false, false, nil
}

func (sc *subConn) track(name string) *track {
	for i := range sc.tracks {
		if sc.tracks[i].topic == name {
			return &sc.tracks[i]
		}
	}
	return nil
}
