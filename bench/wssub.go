package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/gorilla/websocket"

	"github.com/tickfan/tickfan/client"
)

// wsPool is the head-to-head's subscribers: one WebSocket connection per
// subscriber, each read by a goroutine of its own with gorilla/websocket,
// speaking tickfan.v1.json or Centrifugo's JSON protocol. Every target is
// measured by this same client, so what differs between two runs is the
// server; and it reads the sent time of the HTTP publisher's payload,
// which gives the latency from sent as well as from due.
//
// Connection i holds topic i % len(topics). A connection's track is
// guarded by its shard's mutex, as are the shard's histograms and counts.
type wsPool struct {
	dialect subDialect
	url     string
	clock   *clock
	dialer  websocket.Dialer
	shards  []*wsShard
	subs    []*wsSub

	// The measured window, ns on the clock, as in pool.
	winStart, winEnd atomic.Int64

	replies    atomic.Int64 // subscriptions answered, ok or not
	serverShut atomic.Int64 // connections the server closed
	errs       atomic.Int64
	firstErr   atomic.Pointer[string]
	readers    sync.WaitGroup
	stopping   atomic.Bool
}

// subDialect is a server's subscriber protocol.
type subDialect int

const (
	dialectTickfan subDialect = iota
	dialectCentrifugo
)

type wsShard struct {
	mu       sync.Mutex
	hist     *hdrhistogram.Histogram // from due
	sentHist *hdrhistogram.Histogram // from sent
	received int64                   // deliveries of publications due in the window
	arrivals int64                   // deliveries that arrived in the window
	unknown  int64                   // publications of a topic not held
}

type wsSub struct {
	p     *wsPool
	id    int
	sh    *wsShard
	conn  *websocket.Conn
	track track // guarded by sh.mu
}

func newWSPool(url string, d subDialect, clk *clock) *wsPool {
	p := &wsPool{dialect: d, url: url, clock: clk}
	p.dialer = websocket.Dialer{HandshakeTimeout: dialTimeout, ReadBufferSize: 4096, WriteBufferSize: 1024}
	if d == dialectTickfan {
		p.dialer.Subprotocols = []string{ProtoWSJSON.Subprotocol()}
	}
	p.winStart.Store(math64Max)
	p.winEnd.Store(math64Max)
	for range shardCount {
		p.shards = append(p.shards, &wsShard{hist: newHistogram(), sentHist: newHistogram()})
	}
	return p
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

// dialAll connects and subscribes every subscriber, parallel at a time,
// and starts its reader. It returns at the first error; the replies come
// later (waitReplies).
func (p *wsPool) dialAll(ctx context.Context, parallel int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range min(parallel, len(p.subs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(p.subs) {
					return
				}
				if err := p.subs[i].dial(ctx); err != nil {
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

func (s *wsSub) dial(ctx context.Context) error {
	p := s.p
	c, resp, err := p.dialer.DialContext(ctx, p.url, http.Header{})
	if err != nil {
		if resp != nil {
			return fmt.Errorf("websocket %s: %w (HTTP %s)", p.url, err, resp.Status)
		}
		return fmt.Errorf("websocket %s: %w", p.url, err)
	}
	s.conn = c
	_ = c.SetWriteDeadline(time.Now().Add(dialTimeout))
	switch p.dialect {
	case dialectCentrifugo:
		err = c.WriteMessage(websocket.TextMessage, cfConnect)
		if err == nil {
			err = c.WriteMessage(websocket.TextMessage, cfSubscribe(2, s.track.topic))
		}
	default:
		err = c.WriteMessage(websocket.TextMessage, tickfanSub(s.track.topic))
	}
	_ = c.SetWriteDeadline(time.Time{})
	if err != nil {
		c.Close()
		return fmt.Errorf("send sub: %w", err)
	}
	p.readers.Add(1)
	go s.read()
	return nil
}

// read runs until the connection ends: it handles every frame and answers
// what wants an answer (gorilla answers WebSocket pings itself).
func (s *wsSub) read() {
	p := s.p
	defer p.readers.Done()
	var buf, out []byte
	for {
		_, r, err := s.conn.NextReader()
		if err == nil {
			buf, err = readAllInto(buf[:0], r)
		}
		if err != nil {
			if p.stopping.Load() {
				return
			}
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				p.serverShut.Add(1)
			}
			p.noteErr(fmt.Sprintf("connection %d: %v", s.id, err))
			return
		}
		now := p.clock.now()
		out, err = s.frame(buf, now, out[:0])
		if err != nil {
			p.noteErr(fmt.Sprintf("connection %d: %v", s.id, err))
			s.conn.Close()
			return
		}
		if len(out) > 0 {
			if err := s.conn.WriteMessage(websocket.TextMessage, out); err != nil && !p.stopping.Load() {
				p.noteErr(fmt.Sprintf("connection %d: %v", s.id, err))
			}
		}
	}
}

// tickfanSub is {"op":"sub","id":1,"topics":[topic]} (PROTOCOL.md).
func tickfanSub(topic string) []byte {
	b := append([]byte(`{"op":"sub","id":1,"topics":[`), strconv.Quote(topic)...)
	return append(b, "]}"...)
}

// readAllInto reads r to its end into buf.
func readAllInto(buf []byte, r io.Reader) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
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
		recordLatency(sh.sentHist, now-sent)
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

// tally sums the continuity figures of every subscriber.
func (p *wsPool) tally() tally {
	var t tally
	for _, s := range p.subs {
		s.sh.mu.Lock()
		t.add(&s.track)
		s.sh.mu.Unlock()
	}
	return t
}

// outstanding counts the publications, up to lastPub of each topic, that
// have not reached their subscribers.
func (p *wsPool) outstanding(lastPub map[string]uint64) int64 {
	var n int64
	for _, s := range p.subs {
		s.sh.mu.Lock()
		n += s.track.outstanding(lastPub[s.track.topic])
		s.sh.mu.Unlock()
	}
	return n
}

// windowFigures takes (and clears) what the shards gathered for the
// window.
func (p *wsPool) windowFigures() (due, sent *hdrhistogram.Histogram, received, arrivals, unknown int64) {
	due, sent = newHistogram(), newHistogram()
	for _, sh := range p.shards {
		sh.mu.Lock()
		due.Merge(sh.hist)
		sent.Merge(sh.sentHist)
		sh.hist.Reset()
		sh.sentHist.Reset()
		received += sh.received
		arrivals += sh.arrivals
		unknown += sh.unknown
		sh.received, sh.arrivals, sh.unknown = 0, 0, 0
		sh.mu.Unlock()
	}
	return due, sent, received, arrivals, unknown
}

// subscribers returns, per topic, how many subscribers hold it.
func (p *wsPool) subscribers() map[string]int64 {
	m := map[string]int64{}
	for _, s := range p.subs {
		m[s.track.topic]++
	}
	return m
}

// stop closes every connection and waits for the readers.
func (p *wsPool) stop() {
	p.stopping.Store(true)
	for _, s := range p.subs {
		if s.conn != nil {
			s.conn.Close()
		}
	}
	p.readers.Wait()
}
