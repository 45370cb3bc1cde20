package bench

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/gobwas/ws"
	"github.com/panjf2000/gnet/v2"
	"github.com/panjf2000/gnet/v2/pkg/logging"

	"github.com/tickfan/tickfan/client"
)

// wsPool is the head-to-head's subscribers: WebSocket connections
// speaking tickfan.v1.json or Centrifugo's JSON protocol, opened with a
// blocking dial and handshake and then read by a few gnet event loops, as
// pool reads tickfan's (a goroutine per connection costs the bench two
// read calls a message, one of them only to learn there is nothing more,
// and most of its core at 100,000 deliveries a second). Every target is
// measured by this same client, so what differs between two runs is the
// server; and it reads the sent time of the HTTP publisher's payload,
// which gives the latency from sent as well as from due.
//
// Connection i holds topic i % len(topics). A connection's track is
// guarded by its shard's mutex, as are the shard's histograms and counts.
type wsPool struct {
	gnet.BuiltinEventEngine

	dialect subDialect
	dialCfg client.Config
	clock   *clock
	cli     *gnet.Client
	shards  []*shard
	subs    []*wsSub

	// The measured window, ns on the clock, as in pool.
	winStart, winEnd atomic.Int64

	replies    atomic.Int64 // subscriptions answered, ok or not
	serverShut atomic.Int64 // connections the server closed
	closed     atomic.Int64 // connections closed (OnClose)
	errs       atomic.Int64
	firstErr   atomic.Pointer[string]
	stopping   atomic.Bool
}

// subDialect is a server's subscriber protocol.
type subDialect int

const (
	dialectTickfan subDialect = iota
	dialectCentrifugo
)

type wsSub struct {
	p     *wsPool
	id    int
	sh    *shard
	gc    gnet.Conn // guarded by sh.mu
	open  bool      // guarded by sh.mu
	track track     // guarded by sh.mu
}

// newWSPool starts a gnet client with loops event loops (0: one per CPU
// this process may run on) for subscribers of url.
func newWSPool(url string, d subDialect, clk *clock, loops int, log io.Writer) (*wsPool, error) {
	// Offering tickfan.v1.json to Centrifugo does no harm: it picks JSON
	// unless offered its protobuf subprotocol.
	p := &wsPool{dialect: d, clock: clk,
		dialCfg: client.Config{Proto: ProtoWSJSON, Addr: url, DialTimeout: dialTimeout}}
	p.winStart.Store(math64Max)
	p.winEnd.Store(math64Max)
	for range shardCount {
		p.shards = append(p.shards, newShard())
	}
	opts := []gnet.Option{
		gnet.WithMulticore(true),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		gnet.WithLogger(gnetLogger{log}),
		gnet.WithLogLevel(logging.WarnLevel),
	}
	if loops > 0 {
		opts = append(opts, gnet.WithNumEventLoop(loops))
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

func (p *wsPool) setWindow(start, end int64) {
	p.winStart.Store(start)
	p.winEnd.Store(end)
}

// add creates n subscribers, the i-th (counting every one added) holding
// topics[i % len(topics)].
func (p *wsPool) add(n int, topics []string) {
	for range n {
		i := len(p.subs)
		p.subs = append(p.subs, &wsSub{p: p, id: i, sh: p.shards[i%shardCount], track: track{topic: topics[i%len(topics)]}})
	}
}

// dialAll connects and subscribes every subscriber, parallel at a time.
// It returns at the first error; the replies come later (waitReplies).
func (p *wsPool) dialAll(ctx context.Context, parallel int) error {
	return inParallel(ctx, len(p.subs), parallel, func(ctx context.Context, i int) error { return p.subs[i].dial(ctx) })
}

func (s *wsSub) dial(ctx context.Context) error {
	p := s.p
	nc, err := client.DialNet(ctx, p.dialCfg)
	if err != nil {
		return err
	}
	var out []byte
	switch p.dialect {
	case dialectCentrifugo:
		out = client.AppendWSFrame(out, ws.OpText, cfConnect)
		out = client.AppendWSFrame(out, ws.OpText, cfSubscribe(2, s.track.topic))
	default:
		out = client.AppendWSFrame(out, ws.OpText, tickfanSub(s.track.topic))
	}
	_ = nc.SetWriteDeadline(time.Now().Add(dialTimeout))
	if _, err := nc.Write(out); err != nil {
		nc.Close()
		return fmt.Errorf("send sub: %w", err)
	}
	_ = nc.SetWriteDeadline(time.Time{})
	// The reply may already be in the socket; the loop reads it once the
	// connection is enrolled (level-triggered).
	gc, err := p.cli.EnrollContext(nc, s)
	if err != nil {
		return fmt.Errorf("enroll connection in the event loop: %w", err)
	}
	s.sh.mu.Lock()
	if s.gc == nil { // OnClose may have run already
		s.gc, s.open = gc, true
	}
	s.sh.mu.Unlock()
	return nil
}

// OnTraffic runs on the connection's loop: it handles every whole frame
// received and answers what wants an answer.
func (p *wsPool) OnTraffic(c gnet.Conn) gnet.Action {
	s := c.Context().(*wsSub)
	buf, _ := c.Peek(-1)
	now := p.clock.now()
	var out, reply []byte
	n := 0
	var err error
	for err == nil {
		fr, size, perr := client.ParseWSFrame(buf[n:])
		if perr != nil || size == 0 {
			err = perr
			break
		}
		n += size
		switch {
		case fr.Op == ws.OpText && fr.Fin:
			reply, err = s.frame(fr.Payload, now, reply[:0])
			if len(reply) > 0 {
				out = client.AppendWSFrame(out, ws.OpText, reply)
			}
		case fr.Op == ws.OpPing:
			out = client.AppendPong(out, fr.Payload)
		case fr.Op == ws.OpPong:
		case fr.Op == ws.OpClose:
			p.serverShut.Add(1)
			err = fmt.Errorf("server closed the connection: %s", closeReason(fr.Payload))
		default:
			err = fmt.Errorf("unexpected frame: opcode %d, fin %v", fr.Op, fr.Fin)
		}
	}
	_, _ = c.Discard(n)
	if len(out) > 0 {
		_, _ = c.Write(out)
	}
	if err != nil {
		if !p.stopping.Load() {
			p.noteErr(fmt.Sprintf("connection %d: %v", s.id, err))
		}
		return gnet.Close
	}
	return gnet.None
}

// closeReason reads a close frame's code and reason (RFC 6455 5.5.1).
func closeReason(b []byte) string {
	if len(b) < 2 {
		return "no code"
	}
	return fmt.Sprintf("%d %s", int(b[0])<<8|int(b[1]), b[2:])
}

// OnClose runs on the connection's loop.
func (p *wsPool) OnClose(c gnet.Conn, err error) gnet.Action {
	if s, ok := c.Context().(*wsSub); ok {
		s.sh.mu.Lock()
		s.gc, s.open = c, false
		s.sh.mu.Unlock()
		if !p.stopping.Load() && err != nil {
			p.noteErr(fmt.Sprintf("connection %d: %v", s.id, err))
		}
	}
	p.closed.Add(1)
	return gnet.None
}

// tickfanSub is {"op":"sub","id":1,"topics":[topic]} (PROTOCOL.md).
func tickfanSub(topic string) []byte {
	b := append([]byte(`{"op":"sub","id":1,"topics":[`), strconv.Quote(topic)...)
	return append(b, "]}"...)
}

// frame handles one text frame received at now and returns what to send
// back, appended to out.
func (s *wsSub) frame(b []byte, now int64, out []byte) ([]byte, error) {
	if s.p.dialect == dialectCentrifugo {
		return s.centrifugoFrame(b, now, out)
	}
	if pub, ok := client.ScanPublication(b, false); ok {
		s.publication(pub.Topic, pub.Seq, pub.Data, now)
		return out, nil
	}
	m, err := client.Decode(b, false)
	if err != nil {
		return out, err
	}
	switch m.Kind {
	case client.KindReply:
		if m.ID != 1 {
			return out, nil
		}
		if m.Err != nil {
			s.p.noteErr(fmt.Sprintf("connection %d: sub: %v", s.id, m.Err))
			s.p.replies.Add(1)
			return out, nil
		}
		var res map[string]client.SubResult
		if err := m.DecodeRes(&res); err != nil {
			return out, fmt.Errorf("sub reply %q: %w", client.Clip(b), err)
		}
		if r, ok := res[s.track.topic]; ok {
			s.sh.mu.Lock()
			s.track.epoch, s.track.last, s.track.started = r.E, r.S, true
			s.sh.mu.Unlock()
		}
		s.p.replies.Add(1)
	case client.KindReset:
		s.sh.mu.Lock()
		s.track.reset(m.Epoch, m.Seq)
		s.sh.mu.Unlock()
	case client.KindLag:
		s.sh.mu.Lock()
		s.track.lags++
		s.sh.mu.Unlock()
	case client.KindClose:
		s.p.serverShut.Add(1)
		return out, fmt.Errorf("server closed it with %d %s", m.Code, m.Reason)
	}
	return out, nil
}

func (s *wsSub) centrifugoFrame(b []byte, now int64, out []byte) ([]byte, error) {
	return out, parseCentrifugoFrame(b, func(m *cfMessage) {
		switch m.kind {
		case cfPing:
			// The answer to each ping of the frame: a frame of several
			// messages gets them newline-joined, as the server sends.
			if len(out) > 0 {
				out = append(out, '\n')
			}
			out = append(out, "{}"...)
		case cfReply:
			if m.errMsg != "" {
				s.p.noteErr(fmt.Sprintf("connection %d: command %d: %s", s.id, m.id, m.errMsg))
			}
			if m.id != 2 {
				return
			}
			if m.hasOffset && m.errMsg == "" {
				s.sh.mu.Lock()
				s.track.epoch, s.track.last, s.track.started = m.epoch, m.offset, true
				s.sh.mu.Unlock()
			}
			s.p.replies.Add(1)
		case cfPub:
			s.publication(m.channel, m.offset, m.data, now)
		}
	})
}

// publication accounts one publication received at now.
func (s *wsSub) publication(topic []byte, seq uint64, data []byte, now int64) {
	p := s.p
	due, sent, ok := payloadDueSent(data)
	ws, we := p.winStart.Load(), p.winEnd.Load()
	sh := s.sh
	sh.mu.Lock()
	defer sh.mu.Unlock()
	t := &s.track
	if t.topic != string(topic) {
		sh.unknown++
		return
	}
	if !t.started {
		// A subscribe reply without a position (Centrifugo without
		// positioning): continuity counts from the first publication.
		t.last, t.started = seq-1, true
	}
	if !t.pub(seq) {
		return
	}
	if ok && due >= ws && due < we {
		recordLatency(sh.hist, now-due)
		recordLatency(sh.histSent, now-sent)
		sh.received++
	}
	if now >= ws && now < we {
		sh.arrivals++
	}
}

func (p *wsPool) noteErr(msg string) {
	p.errs.Add(1)
	p.firstErr.CompareAndSwap(nil, &msg)
}

// waitReplies waits until n subscriptions are answered.
func (p *wsPool) waitReplies(ctx context.Context, n int, timeout time.Duration) error {
	if waitFor(ctx, timeout, func() bool { return p.replies.Load() >= int64(n) || p.errs.Load() > 0 }) && p.errs.Load() == 0 {
		return nil
	}
	msg := ""
	if e := p.firstErr.Load(); e != nil {
		msg = " (first error: " + *e + ")"
	}
	return fmt.Errorf("%d of %d subscriptions answered within %v%s", p.replies.Load(), n, timeout, msg)
}

// eachTrack calls f with every subscriber's track, under its lock.
func (p *wsPool) eachTrack(f func(*track)) {
	for _, s := range p.subs {
		s.sh.mu.Lock()
		f(&s.track)
		s.sh.mu.Unlock()
	}
}

// windowFigures takes (and clears) what the shards gathered for the
// window.
func (p *wsPool) windowFigures() (due, sent *hdrhistogram.Histogram, received, arrivals, unknown int64) {
	return takeWindow(p.shards)
}

// subscribers returns, per topic, how many subscribers hold it.
func (p *wsPool) subscribers() map[string]int64 {
	m := map[string]int64{}
	for _, s := range p.subs {
		m[s.track.topic]++
	}
	return m
}

// stop closes every connection with SO_LINGER 0 (a reset: no ports left
// in TIME_WAIT), waits a little for the loops to see them closed, and
// stops the loops.
func (p *wsPool) stop() {
	p.stopping.Store(true)
	before, n := p.closed.Load(), 0
	for _, s := range p.subs {
		s.sh.mu.Lock()
		gc, open := s.gc, s.open
		s.sh.mu.Unlock()
		if open {
			_ = gc.SetLinger(0)
			_ = gc.Close()
			n++
		}
	}
	waitFor(context.Background(), 5*time.Second, func() bool { return p.closed.Load()-before >= int64(n) })
	_ = p.cli.Stop()
}
