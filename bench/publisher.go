package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/tickfan/tickfan/client"
)

// publisher publishes open loop over TCP msgpack connections with the pub
// command: publication g (counted over the whole run) is for topic
// g % len(topics) and is due at a time fixed in advance; it carries that
// due time as the first element of its payload, so a server that stalls
// shows as latency and never as fewer sends. Pubs are pipelined: replies
// are read by one goroutine per connection and counted, never awaited.
//
// Run, and everything not atomic, belongs to one goroutine at a time.
type publisher struct {
	pubTally
	clock *clock
	conns []*pubConn
	pacer *pacer

	prefix  [][]byte // per topic: map header, op, t, d key
	payload []byte   // [due, sent, pad], due and sent patched per publication
	next    uint64   // the next publication's index g; its id is g+1
	// late is the write time minus the due time of the publications
	// due in the window.
	late     *hdrhistogram.Histogram
	inWindow map[string]int64 // publications due in the window, per topic
	tooMany  atomic.Int64     // 429 answers
}

// pubTally is what a publisher counts of its publications and their
// answers.
type pubTally struct {
	what     string // names the publisher in errors
	topics   []string
	sent     atomic.Int64
	acked    atomic.Int64
	errs     atomic.Int64
	firstErr atomic.Pointer[string]
	lastSeq  []atomic.Uint64 // per topic, from the answers
}

func newPubTally(what string, topics []string) pubTally {
	return pubTally{what: what, topics: topics, lastSeq: make([]atomic.Uint64, len(topics))}
}

type pubConn struct {
	c       *client.Conn // written by run and by the reply reader (heartbeats)
	buf     []byte
	pending []pendingPub // the publications in buf, for their sent time
	done    chan struct{}
}

// pendingPub is a publication waiting in a pubConn's buffer: where its
// sent time goes and when it was due.
type pendingPub struct {
	sentAt   int
	due      int64
	inWindow bool
}

// newPublisher dials conns TCP connections and authenticates each with
// token when there is one.
func newPublisher(ctx context.Context, cfg *Config, clk *clock, topics []string, size, conns int) (*publisher, error) {
	pc, err := newPacer(cfg.Pace, clk)
	if err != nil {
		return nil, err
	}
	p := &publisher{pubTally: newPubTally("publisher", topics), clock: clk, pacer: pc, late: newHistogram(), inWindow: map[string]int64{}}
	p.payload = payloadTemplate(size)
	for _, t := range topics {
		p.prefix = append(p.prefix, pubPrefix(t))
	}
	for range max(conns, 1) {
		c, err := client.Dial(ctx, cfg.dialConfig(ProtoTCP, 0))
		if err != nil {
			p.close()
			return nil, err
		}
		pc := &pubConn{c: c, done: make(chan struct{})}
		p.conns = append(p.conns, pc)
		if cfg.Token != "" {
			if err := authenticate(c, cfg.Token); err != nil {
				close(pc.done) // no reader runs
				p.close()
				return nil, err
			}
		}
		go p.readReplies(pc)
	}
	return p, nil
}

// authenticate sends auth and waits for its answer.
func authenticate(c *client.Conn, token string) error {
	_ = c.SetDeadline(time.Now().Add(dialTimeout))
	defer c.SetDeadline(time.Time{})
	if err := c.Auth(0, token); err != nil {
		return fmt.Errorf("publisher auth: %w", err)
	}
	m, err := c.Next()
	if err != nil {
		return fmt.Errorf("publisher auth: %w", err)
	}
	if m.Err != nil {
		return fmt.Errorf("publisher auth: the server refused the token: %v", m.Err)
	}
	return nil
}

func (p *publisher) readReplies(pc *pubConn) {
	defer close(pc.done)
	for {
		body, err := pc.c.NextBody()
		if err != nil {
			return
		}
		m, err := client.Decode(body, true)
		if err != nil {
			p.noteErr(err.Error())
			continue
		}
		var pos client.Position
		switch {
		case m.Kind == client.KindPing:
			_ = pc.c.Keepalive()
		case m.Kind == client.KindClose:
			p.noteErr("the server closed the publisher connection")
			return
		case m.Err != nil:
			p.errs.Add(1)
			if m.Err.Code == 429 {
				p.tooMany.Add(1)
			}
			p.noteErr(m.Err.Error())
		case m.ID > 0 && m.DecodeRes(&pos) == nil:
			p.acked.Add(1)
			ls := &p.lastSeq[(m.ID-1)%uint64(len(p.topics))]
			for {
				old := ls.Load()
				if pos.S <= old || ls.CompareAndSwap(old, pos.S) {
					break
				}
			}
		}
	}
}

func (p *pubTally) noteErr(msg string) { p.firstErr.CompareAndSwap(nil, &msg) }

// failed returns how many publications failed and the first one's error.
func (p *pubTally) failed() (n int64, first string) {
	if e := p.firstErr.Load(); e != nil {
		first = *e
	}
	return p.errs.Load(), first
}

// maxBatch bounds the publications written in one write when the
// publisher is behind.
const maxBatch = 256

// run publishes at rate publications a second (over all topics), the k-th
// of this call due at start + k/rate, until the next due time reaches
// stop; times are on the clock. Publications due in [winStart, winEnd)
// are counted per topic for the expected deliveries. It returns early when
// ctx ends or a write fails.
func (p *publisher) run(ctx context.Context, rate float64, start, stop, winStart, winEnd int64) error {
	interval := 1e9 / rate
	for k := int64(0); ; {
		due := start + int64(float64(k)*interval)
		if due >= stop || ctx.Err() != nil {
			return nil
		}
		now := p.clock.now()
		if due > now {
			p.pacer.wait(due)
			continue
		}
		// Everything due by now goes out in one write per connection.
		for n := 0; due <= now && due < stop && n < maxBatch; n++ {
			g := p.next
			ti := int(g % uint64(len(p.topics)))
			pc := p.conns[ti%len(p.conns)]
			inWin := due >= winStart && due < winEnd
			var at int
			pc.buf, at = p.appendPub(pc.buf, ti, g+1, due)
			pc.pending = append(pc.pending, pendingPub{sentAt: at, due: due, inWindow: inWin})
			if inWin {
				p.inWindow[p.topics[ti]]++
			}
			p.next++
			k++
			due = start + int64(float64(k)*interval)
		}
		for _, pc := range p.conns {
			if len(pc.buf) == 0 {
				continue
			}
			_ = pc.c.SetWriteDeadline(time.Now().Add(30 * time.Second))
			// One clock read a write, as close to it as can be: latency
			// from sent leaves out the publisher's own lateness, which
			// latency from due includes.
			sent := p.clock.now()
			for _, pp := range pc.pending {
				binary.BigEndian.PutUint64(pc.buf[pp.sentAt:], uint64(sent))
			}
			err := pc.c.Write(pc.buf)
			for _, pp := range pc.pending {
				if pp.inWindow {
					recordLatency(p.late, sent-pp.due)
				}
			}
			pc.buf, pc.pending = pc.buf[:0], pc.pending[:0]
			if err != nil {
				return fmt.Errorf("publish: %w", err)
			}
		}
		p.sent.Store(int64(p.next))
	}
}

// appendPub appends the TCP frame of pub g (id) of topic ti due at due,
// and returns where in dst its sent time goes (zero until patched).
func (p *publisher) appendPub(dst []byte, ti int, id uint64, due int64) ([]byte, int) {
	pre := p.prefix[ti]
	n := len(pre) + len(p.payload) + 3 + 9
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	dst = append(dst, pre...)
	at := len(dst)
	dst = append(dst, p.payload...)
	binary.BigEndian.PutUint64(dst[at+dueAt:], uint64(due))
	dst = appendMpStr(dst, "id")
	return appendMpUint64(dst, id), at + sentAt
}

// waitReplies waits until every publication sent has its answer.
func (p *pubTally) waitReplies(ctx context.Context, timeout time.Duration) error {
	if waitFor(ctx, timeout, func() bool { return p.acked.Load()+p.errs.Load() >= p.sent.Load() }) {
		return nil
	}
	return fmt.Errorf("%s: %d of %d pubs answered within %v", p.what, p.acked.Load()+p.errs.Load(), p.sent.Load(), timeout)
}

// lastPublished returns the last seq the server gave each topic (0 where
// its answers carry none).
func (p *pubTally) lastPublished() map[string]uint64 {
	m := make(map[string]uint64, len(p.topics))
	for i, t := range p.topics {
		m[t] = p.lastSeq[i].Load()
	}
	return m
}

// takeWindow returns and clears the per-topic counts of publications due
// in the window, and the lateness histogram of their writes.
func (p *publisher) takeWindow() (map[string]int64, *hdrhistogram.Histogram) {
	w, l := p.inWindow, p.late
	p.inWindow, p.late = map[string]int64{}, newHistogram()
	return w, l
}

// refusedError explains pub errors; nil when there were none.
func (p *publisher) refusedError(rate float64) error {
	n, first := p.failed()
	if n == 0 {
		return nil
	}
	if p.tooMany.Load() > 0 {
		return fmt.Errorf("the server refused %d pubs with 429 (first: %s): its --cmd-rate is below the publish rate of %.0f/s per connection; start it with --cmd-rate 1000000 or use more --pub-conns", n, first, rate/float64(len(p.conns)))
	}
	return fmt.Errorf("the server refused %d pubs (first: %s); a 401 means it needs --anonymous-pub 'bench.>' or a --token with a pub claim", n, first)
}

func (p *publisher) close() {
	p.pacer.close()
	for _, pc := range p.conns {
		if tc, ok := pc.c.NetConn().(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		pc.c.Close()
	}
	for _, pc := range p.conns {
		<-pc.done
	}
}

// pubPrefix is the start of every pub command body to topic t: a map of 4
// (op, t, d and id follow), up to d's key; appendPub adds the rest.
func pubPrefix(t string) []byte {
	b := []byte{0x84}
	b = appendMpStr(b, "op")
	b = appendMpStr(b, "pub")
	b = appendMpStr(b, "t")
	b = appendMpStr(b, t)
	return appendMpStr(b, "d")
}
