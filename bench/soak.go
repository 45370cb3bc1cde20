package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/tickfan/tickfan/client"
)

// SoakPhase is one stretch of a soak run under one network condition,
// which whoever shapes the network (scripts/soak-weaknet) applies on the
// same schedule; the bench only names the latencies after it.
type SoakPhase struct {
	Name     string
	Duration time.Duration
}

// ParseSoakPhases reads "clean:10s,weak:40s,calm:10s".
func ParseSoakPhases(s string) ([]SoakPhase, error) {
	var ps []SoakPhase
	for _, f := range strings.Split(s, ",") {
		name, dur, ok := strings.Cut(strings.TrimSpace(f), ":")
		d, err := time.ParseDuration(dur)
		if !ok || name == "" || err != nil || d <= 0 {
			return nil, fmt.Errorf("soak phase %q: want name:duration, e.g. loss:20s", f)
		}
		ps = append(ps, SoakPhase{Name: name, Duration: d})
	}
	return ps, nil
}

// SoakFigures are the soak scenario's checks: every subscriber must end
// holding every publication of its topics in order, or a reset (which
// says what it skipped) followed by contiguous data; nothing may be lost
// silently, and every subscriber that was cut must be back and caught up.
type SoakFigures struct {
	Subscribers int `json:"subscribers"`
	// Protos is the subscribers per transport (they are mixed).
	Protos map[string]int `json:"protos"`
	// FinalSeq is each topic's last seq, read at the end on a connection
	// of its own.
	FinalSeq map[string]uint64 `json:"final_seq"`

	// The publisher: pubs sent, answered with a seq, refused with an
	// error, and of unknown fate (their connection broke before the
	// answer). FinalSeq - acked, summed over topics, must lie in
	// [0, unknown].
	PubSent       int64 `json:"pub_sent"`
	PubAcked      int64 `json:"pub_acked"`
	PubRefused    int64 `json:"pub_refused"`
	PubUnknown    int64 `json:"pub_unknown"`
	PubReconnects int64 `json:"pub_reconnects"`

	// The subscribers.
	Delivered  int64 `json:"delivered"`
	Expected   int64 `json:"expected"`
	Reconnects int64 `json:"reconnects"`
	// Disconnects are the reconnects by what ended the connection.
	Disconnects  map[string]int64 `json:"disconnects"`
	DialFailures int64            `json:"dial_failures"`
	// Recovered and NotRecovered are topics resubscribed with since that
	// the server answered rec true (the gap was sent) or false (a reset
	// followed).
	Recovered    int64 `json:"recovered"`
	NotRecovered int64 `json:"not_recovered"`
	Lags         int64 `json:"lags"`
	Resets       int64 `json:"resets"`
	// ResetSkipped is publications a reset passed over (the snapshot
	// after it replaces them): announced, so not lost. Less those sent
	// again when the snapshot was older than what the client held.
	ResetSkipped int64 `json:"reset_skipped"`
	Snapshots    int64 `json:"snapshots"`
	// Lost counts publications missing without a reset, Dups those
	// delivered twice or out of order: both must be 0.
	Lost int64 `json:"lost"`
	Dups int64 `json:"dups"`
	// CaughtUpS is how long after the last publication every subscriber
	// held its topics' final seq; -1 when some never did.
	CaughtUpS float64 `json:"caught_up_s"`

	// Phases are the latencies per network condition, by receipt time.
	Phases []SoakPhaseFigures `json:"phases"`

	// Violations says what broke the promise; empty when the run passed.
	Violations []string `json:"violations"`
	OK         bool     `json:"ok"`
}

// SoakPhaseFigures are one phase's deliveries and latency (µs from due
// time to receipt; recovered publications count from their due time, so
// a cut shows as the time it took to come back).
type SoakPhaseFigures struct {
	Name       string         `json:"name"`
	StartS     float64        `json:"start_s"`
	DurationS  float64        `json:"duration_s"`
	Delivered  int64          `json:"delivered"`
	Reconnects int64          `json:"reconnects"`
	Resets     int64          `json:"resets"`
	Latency    LatencySummary `json:"latency_us"`
}

// soakProtos are the transports the subscribers take in turn.
var soakProtos = []Proto{ProtoTCP, ProtoWSJSON, ProtoWSMsgpack}

// soakSnapEvery makes every nth publication of a topic a snapshot, so
// that a reset is followed by a snapshot as PROTOCOL.md describes.
const soakSnapEvery = 50

// soakRun is the shared state of one soak run.
type soakRun struct {
	cfg    *Config
	topics []string
	// t0 is when the first phase began (unix ns), 0 before.
	t0     atomic.Int64
	phases []SoakPhase
	ends   []time.Duration // each phase's end from t0

	mu    sync.Mutex
	hists []*hdrhistogram.Histogram // per phase, under mu
	viol  []string                  // under mu
	// causes counts the subscribers' disconnects by cause, under mu.
	causes map[string]int64

	phaseDelivered []atomic.Int64
	phaseReconn    []atomic.Int64
	phaseResets    []atomic.Int64
}

func (r *soakRun) started() bool { return r.t0.Load() != 0 }

// since is the time from the first phase's start to t, in ns.
func (r *soakRun) since(t time.Time) int64 { return t.UnixNano() - r.t0.Load() }

// phase is the index of the phase at t (the last one past the end).
func (r *soakRun) phase(t time.Time) int {
	d := time.Duration(r.since(t))
	for i, e := range r.ends {
		if d < e {
			return i
		}
	}
	return len(r.ends) - 1
}

func (r *soakRun) violation(format string, a ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.viol) < 50 {
		r.viol = append(r.viol, fmt.Sprintf(format, a...))
	}
}

// runSoak publishes at Rate per topic through every phase from a
// publisher that reconnects, to Conns subscribers of mixed transports that
// reconnect with since whenever their connection breaks, then checks the
// accounting. The network is cut and shaped from outside (a script, or a
// test's proxy); the bench only survives it and keeps the books.
func runSoak(ctx context.Context, c *Config, tgt *target, emit func(Result) error) error {
	phases := c.SoakPhases
	if len(phases) == 0 {
		phases = []SoakPhase{{Name: "all", Duration: c.Duration}}
	}
	r := &soakRun{cfg: c, topics: topicNames("soak", c.Topics), phases: phases, causes: map[string]int64{}}
	var total time.Duration
	for _, p := range phases {
		total += p.Duration
		r.ends = append(r.ends, total)
		r.hists = append(r.hists, newHistogram())
	}
	r.phaseDelivered = make([]atomic.Int64, len(phases))
	r.phaseReconn = make([]atomic.Int64, len(phases))
	r.phaseResets = make([]atomic.Int64, len(phases))

	fig := &SoakFigures{Subscribers: c.Conns, Protos: map[string]int{}}
	subs := make([]*soakSub, c.Conns)
	for i := range subs {
		p := soakProtos[i%len(soakProtos)]
		fig.Protos[string(p)]++
		// Each subscriber holds two topics, so one connection's recovery
		// covers more than one topic.
		ts := []string{r.topics[i%len(r.topics)]}
		if len(r.topics) > 1 {
			ts = append(ts, r.topics[(i+1)%len(r.topics)])
		}
		subs[i] = newSoakSub(r, i, p, ts)
	}

	subCtx, stopSubs := context.WithCancel(ctx)
	defer stopSubs()
	var wg sync.WaitGroup
	for _, s := range subs {
		wg.Go(func() { s.loop(subCtx) })
	}
	// Wait for every subscriber's first subscription before publishing, so
	// each starts from the topic's beginning.
	if !waitFor(ctx, 30*time.Second, func() bool {
		for _, s := range subs {
			if !s.subscribed.Load() {
				return false
			}
		}
		return true
	}) {
		stopSubs()
		wg.Wait()
		return errors.New("soak: the subscribers did not all subscribe within 30s")
	}
	c.logf("soak: %d subscribers on %d topics; phases %s", c.Conns, c.Topics, describePhases(phases))

	m := startMeter(ctx, c, tgt)
	t0 := time.Now()
	r.t0.Store(t0.UnixNano())
	c.logf("soak: phase 1 %s begins", phases[0].Name)
	pub := &soakPub{run: r}
	pub.publish(ctx, c.Rate, t0.Add(total))
	pubEnd := time.Now()

	// The truth of each topic's end, from a connection of its own.
	final, err := r.finalSeqs(ctx)
	if err != nil {
		stopSubs()
		wg.Wait()
		return fmt.Errorf("soak: reading the final seqs: %w", err)
	}
	fig.FinalSeq = final
	caught := waitFor(ctx, c.Drain, func() bool {
		for _, s := range subs {
			if !s.caughtUp(final) {
				return false
			}
		}
		return true
	})
	fig.CaughtUpS = -1
	if caught {
		fig.CaughtUpS = time.Since(pubEnd).Seconds()
	}
	for _, s := range subs {
		s.markEnd()
	}
	stopSubs()
	wg.Wait()

	res := baseResult(c)
	res.Params.Proto = "mixed"
	res.WindowS = total.Seconds()
	m.stop(ctx, c, &res)

	fig.PubSent, fig.PubAcked, fig.PubRefused = pub.sent.Load(), pub.acked.Load(), pub.refused.Load()
	fig.PubUnknown, fig.PubReconnects = pub.unknown.Load(), pub.reconnects.Load()
	var finalSum int64
	for _, s := range final {
		finalSum += int64(s)
	}
	if landed := finalSum - fig.PubAcked; landed < 0 || landed > fig.PubUnknown {
		r.violation("publisher: the topics end at %d publications in all, %d acknowledged and %d of unknown fate: the server holds publications nobody sent, or lost acknowledged ones", finalSum, fig.PubAcked, fig.PubUnknown)
	}
	for _, s := range subs {
		s.account(fig, final)
	}
	if !caught {
		r.violation("not every subscriber held its topics' final seq %.1fs after the last publication", c.Drain.Seconds())
	}
	if fig.PubAcked == 0 {
		r.violation("no publication was acknowledged")
	}
	for i, p := range phases {
		start := 0.0
		if i > 0 {
			start = r.ends[i-1].Seconds()
		}
		fig.Phases = append(fig.Phases, SoakPhaseFigures{
			Name: p.Name, StartS: start, DurationS: p.Duration.Seconds(),
			Delivered: r.phaseDelivered[i].Load(), Reconnects: r.phaseReconn[i].Load(),
			Resets: r.phaseResets[i].Load(), Latency: summarize(r.hists[i]),
		})
	}
	r.mu.Lock()
	fig.Disconnects = maps.Clone(r.causes)
	r.mu.Unlock()
	fig.Violations = append([]string{}, r.viol...)
	fig.OK = len(fig.Violations) == 0

	all := newHistogram()
	for _, h := range r.hists {
		all.Merge(h)
	}
	res.Latency = summarize(all)
	res.LatencyDist = distribution(all)
	res.Published, res.PubAcked, res.PubErrors = fig.PubSent, fig.PubAcked, fig.PubRefused+fig.PubUnknown
	res.Expected, res.Received = fig.Expected, fig.Delivered
	res.Missing, res.Dups, res.Resets, res.ResetSkipped, res.Lags = fig.Lost, fig.Dups, fig.Resets, fig.ResetSkipped, fig.Lags
	res.DeliveriesPerS = float64(fig.Delivered) / total.Seconds()
	res.KeepsUp = fig.OK
	res.Soak = fig
	if eerr := emit(res); eerr != nil {
		return eerr
	}
	if !fig.OK {
		return fmt.Errorf("soak: %d violations, the first: %s", len(fig.Violations), fig.Violations[0])
	}
	return nil
}

func describePhases(ps []SoakPhase) string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(p.Name + ":" + p.Duration.String())
	}
	return b.String()
}

// finalSeqs subscribes to every topic without since on a fresh TCP
// connection, retrying for Drain while the network may still be down: the
// reply's s is each topic's last seq.
func (r *soakRun) finalSeqs(ctx context.Context) (map[string]uint64, error) {
	var last error
	deadline := time.Now().Add(r.cfg.Drain)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		final, err := r.finalSeqsOnce(ctx)
		if err == nil {
			return final, nil
		}
		last = err
		sleepUntil(ctx, time.Now().Add(200*time.Millisecond))
	}
	return nil, last
}

func (r *soakRun) finalSeqsOnce(ctx context.Context) (map[string]uint64, error) {
	cn, err := client.Dial(ctx, r.cfg.dialConfig(ProtoTCP, 0))
	if err != nil {
		return nil, err
	}
	defer cn.Close()
	_ = cn.SetDeadline(time.Now().Add(5 * time.Second))
	if err := cn.Subscribe(1, r.topics, nil); err != nil {
		return nil, err
	}
	for {
		msg, err := cn.Next()
		if err != nil {
			return nil, err
		}
		if msg.Kind != client.KindReply || msg.ID != 1 {
			continue
		}
		if msg.Err != nil {
			return nil, msg.Err
		}
		var res map[string]client.SubResult
		if err := msg.DecodeRes(&res); err != nil {
			return nil, err
		}
		final := map[string]uint64{}
		for _, t := range r.topics {
			final[t] = res[t].S
		}
		return final, nil
	}
}

// backoff is the wait before reconnect attempt n (from 0): 50 ms doubling
// to 2 s, with jitter so that a cut does not bring everyone back at once.
func backoff(n int) time.Duration {
	d := 50 * time.Millisecond << min(n, 6)
	d = min(d, 2*time.Second)
	return d/2 + rand.N(d/2+1)
}

// disconnectCause names what ended a connection, for the tally.
func disconnectCause(err error) string {
	var ce *client.CloseError
	var ne net.Error
	switch {
	case errors.As(err, &ce):
		return "websocket close " + strconv.Itoa(ce.Code)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "end of stream"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "other: " + err.Error()
}

// soakPub publishes round robin over the topics on one TCP connection,
// reconnecting when it breaks.
type soakPub struct {
	run *soakRun

	sent, acked, refused, unknown, reconnects atomic.Int64

	mu      sync.Mutex
	pending map[uint64]string // pub id -> topic, under mu
}

// publish sends rate pubs/s per topic until end. Pubs due while the
// connection is down are not sent (a real producer would drop or buffer
// them; the soak counts only what it sent).
func (p *soakPub) publish(ctx context.Context, rate float64, end time.Time) {
	c := p.run.cfg
	topics := p.run.topics
	interval := time.Duration(float64(time.Second) / (rate * float64(len(topics))))
	payload := payloadTemplate(c.Size)
	var (
		cn    *client.Conn
		done  chan struct{}
		id    uint64
		fails int
		n     int
	)
	counts := make([]int, len(topics))
	closeConn := func() {
		if cn == nil {
			return
		}
		cn.Close()
		<-done
		cn = nil
	}
	defer closeConn()
	next := time.Now()
	for time.Now().Before(end) && ctx.Err() == nil {
		if cn == nil {
			dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			nc, err := client.Dial(dctx, c.dialConfig(ProtoTCP, 0))
			cancel()
			if err != nil {
				fails++
				sleepUntil(ctx, time.Now().Add(backoff(fails)))
				next = time.Now()
				continue
			}
			if fails > 0 || p.sent.Load() > 0 {
				p.reconnects.Add(1)
			}
			fails = 0
			cn, done = nc, make(chan struct{})
			go p.read(cn, done)
		}
		sleepUntil(ctx, next)
		next = next.Add(interval)
		if d := time.Until(next); d < -time.Second {
			next = time.Now() // behind by more than a second: do not burst
		}
		i := n % len(topics)
		n++
		counts[i]++
		binary.BigEndian.PutUint64(payload[dueAt:], uint64(p.run.since(time.Now())))
		id++
		p.mu.Lock()
		if p.pending == nil {
			p.pending = map[uint64]string{}
		}
		p.pending[id] = topics[i]
		p.mu.Unlock()
		p.sent.Add(1)
		_ = cn.SetWriteDeadline(time.Now().Add(2 * time.Second))
		if err := cn.Publish(id, topics[i], payload, counts[i]%soakSnapEvery == 1); err != nil {
			closeConn()
		}
		select {
		case <-done:
			closeConn()
		default:
		}
	}
	closeConn()
}

// read takes the answers of one publisher connection; when it ends, the
// pubs still unanswered are of unknown fate.
func (p *soakPub) read(cn *client.Conn, done chan struct{}) {
	defer close(done)
	defer func() {
		p.mu.Lock()
		p.unknown.Add(int64(len(p.pending)))
		clear(p.pending)
		p.mu.Unlock()
	}()
	for {
		_ = cn.SetReadDeadline(time.Now().Add(30 * time.Second))
		msg, err := cn.Next()
		if err != nil {
			cn.Close()
			return
		}
		switch msg.Kind {
		case client.KindPing:
			_ = cn.Keepalive()
		case client.KindReply:
			p.mu.Lock()
			_, ok := p.pending[msg.ID]
			delete(p.pending, msg.ID)
			p.mu.Unlock()
			switch {
			case !ok:
			case msg.Err != nil:
				p.refused.Add(1)
			default:
				p.acked.Add(1)
			}
		}
	}
}

// soakTopic is one topic's continuity on one subscriber, across its
// connections.
type soakTopic struct {
	epoch string
	// last is the seq of the last publication held; held says there is
	// one (or a sub reply's starting point that the next must follow).
	last uint64
	held bool
	// anchor: the next publication starts the topic afresh (after a sub
	// without since, or a reset): a snapshot, or an update after bound.
	anchor      bool
	bound       uint64
	afterReset  bool
	awaitReset  bool // rec false: a reset must come before any publication
	delivered   int64
	first       uint64 // the seq continuity is counted from
	skipped     int64
	lost, dups  int64
	snaps       int64
	recovered   int64
	notRec      int64
	resets      int64
	lags        int64
	everHeld    bool
	sinceOnLast bool
}

// soakSub is one subscriber: it reconnects with since for as long as the
// run lasts.
type soakSub struct {
	run    *soakRun
	idx    int
	proto  Proto
	topics []string

	subscribed atomic.Bool

	mu         sync.Mutex
	state      map[string]*soakTopic // under mu
	connected  bool                  // under mu
	backAtEnd  bool                  // connected when the run ended, under mu
	reconnects int64
	dialFails  int64
}

func newSoakSub(r *soakRun, idx int, p Proto, topics []string) *soakSub {
	s := &soakSub{run: r, idx: idx, proto: p, topics: topics, state: map[string]*soakTopic{}}
	for _, t := range topics {
		s.state[t] = &soakTopic{anchor: true}
	}
	return s
}

func (s *soakSub) name() string {
	return "subscriber " + strconv.Itoa(s.idx) + " (" + string(s.proto) + ")"
}

func (s *soakSub) loop(ctx context.Context) {
	fails := 0
	for ctx.Err() == nil {
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		cn, err := client.Dial(dctx, s.run.cfg.dialConfig(s.proto, 0))
		cancel()
		if err != nil {
			s.mu.Lock()
			s.dialFails++
			s.mu.Unlock()
			fails++
			sleepUntil(ctx, time.Now().Add(backoff(fails)))
			continue
		}
		fails = 0
		stop := context.AfterFunc(ctx, func() { cn.Close() })
		why := s.session(cn)
		stop()
		cn.Close()
		s.mu.Lock()
		s.connected = false
		s.mu.Unlock()
		if ctx.Err() == nil {
			s.mu.Lock()
			s.reconnects++
			s.mu.Unlock()
			if s.run.started() {
				s.run.phaseReconn[s.run.phase(time.Now())].Add(1)
			}
			s.run.mu.Lock()
			s.run.causes[why]++
			s.run.mu.Unlock()
			sleepUntil(ctx, time.Now().Add(backoff(0)))
		}
	}
}

// session subscribes on cn with since for every topic that holds a
// publication, and reads until the connection breaks.
func (s *soakSub) session(cn *client.Conn) (why string) {
	s.mu.Lock()
	since := map[string]client.Position{}
	for _, t := range s.topics {
		st := s.state[t]
		st.sinceOnLast = false
		if st.held && !st.anchor && !st.awaitReset {
			since[t] = client.Position{E: st.epoch, S: st.last}
			st.sinceOnLast = true
		} else {
			// Nothing held to continue from: start afresh, and count
			// from wherever the server starts the topic.
			st.anchor, st.awaitReset, st.afterReset = true, false, false
		}
	}
	s.mu.Unlock()
	_ = cn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := cn.Subscribe(1, s.topics, since); err != nil {
		return "sub write: " + disconnectCause(err)
	}
	mp := s.proto.Msgpack()
	for {
		// The server pings every heartbeat; a link that stays silent far
		// longer is gone even if no reset came. The write deadline moves
		// with it: Next writes the WebSocket pongs.
		_ = cn.SetDeadline(time.Now().Add(15 * time.Second))
		msg, err := cn.Next()
		if err != nil {
			return disconnectCause(err)
		}
		now := time.Now()
		switch msg.Kind {
		case client.KindPing:
			_ = cn.Keepalive()
		case client.KindReply:
			if msg.ID != 1 {
				continue
			}
			if msg.Err != nil {
				s.run.violation("%s: sub refused: %v", s.name(), msg.Err)
				return "sub refused"
			}
			var res map[string]client.SubResult
			if err := msg.DecodeRes(&res); err != nil {
				s.run.violation("%s: sub reply: %v", s.name(), err)
				return "bad sub reply"
			}
			s.onSubReply(res)
		case client.KindPublication:
			s.onPublication(msg.Topic, msg.Seq, msg.Snap, payloadDue(msg.Data, mp), now)
		case client.KindLag:
			s.mu.Lock()
			if st := s.state[msg.Topic]; st != nil {
				st.lags++
				if st.held && !st.anchor && msg.Seq != st.last {
					s.run.violation("%s: %s: lag at s %d while holding s %d", s.name(), msg.Topic, msg.Seq, st.last)
				}
			}
			s.mu.Unlock()
		case client.KindReset:
			s.mu.Lock()
			if st := s.state[msg.Topic]; st != nil {
				st.resets++
				st.awaitReset = false
				st.anchor, st.afterReset, st.bound, st.epoch = true, true, msg.Seq, msg.Epoch
			}
			s.mu.Unlock()
			if s.run.started() {
				s.run.phaseResets[s.run.phase(now)].Add(1)
			}
		case client.KindClose:
			return "server close " + strconv.Itoa(msg.Code)
		}
	}
}

func (s *soakSub) onSubReply(res map[string]client.SubResult) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.connected = true
	for _, t := range s.topics {
		st, r := s.state[t], res[t]
		switch {
		case st.sinceOnLast && r.Rec:
			st.recovered++
		case st.sinceOnLast:
			st.notRec++
			st.awaitReset = true
		default:
			// A fresh start: a snapshot at or before r.S, or s r.S+1.
			st.anchor, st.afterReset, st.bound, st.epoch = true, false, r.S, r.E
		}
	}
	s.subscribed.Store(true)
}

func (s *soakSub) onPublication(topic string, seq uint64, snap bool, due int64, now time.Time) {
	s.mu.Lock()
	st := s.state[topic]
	if st == nil {
		s.mu.Unlock()
		s.run.violation("%s: publication of %s, which it does not hold", s.name(), topic)
		return
	}
	ok := true
	switch {
	case st.awaitReset:
		s.run.violation("%s: %s: publication s %d after rec false without a reset first", s.name(), topic, seq)
		st.lost++
		ok = false
	case st.anchor:
		switch {
		case snap, st.afterReset && seq > st.bound, !st.afterReset && seq == st.bound+1:
			// A fresh start after holding something: what lies between
			// was passed over openly (a reset, or a rec false), or is
			// sent again when the snapshot is older than what was held.
			if st.held {
				st.skipped += int64(seq) - int64(st.last) - 1
			}
		default:
			s.run.violation("%s: %s: s %d does not start the topic (from s %d, snapshot %v)", s.name(), topic, seq, st.bound, snap)
			st.lost++
			ok = false
		}
		if ok {
			if !st.everHeld {
				st.first, st.everHeld = seq, true
			}
			st.anchor, st.afterReset = false, false
		}
	case seq == st.last+1:
	case seq <= st.last:
		st.dups++
		s.run.violation("%s: %s: s %d again after s %d", s.name(), topic, seq, st.last)
		ok = false
	default:
		st.lost += int64(seq - st.last - 1)
		s.run.violation("%s: %s: s %d after s %d without a reset: %d lost", s.name(), topic, seq, st.last, seq-st.last-1)
	}
	if ok || seq > st.last {
		st.last, st.held = seq, true
	}
	if ok {
		st.delivered++
		if snap {
			st.snaps++
		}
	}
	s.mu.Unlock()
	if ok && s.run.started() && due > 0 {
		ph := s.run.phase(now)
		s.run.phaseDelivered[ph].Add(1)
		s.run.mu.Lock()
		recordLatency(s.run.hists[ph], s.run.since(now)-due)
		s.run.mu.Unlock()
	}
}

// markEnd notes whether the subscriber is connected as the run ends,
// before its connection is closed.
func (s *soakSub) markEnd() {
	s.mu.Lock()
	s.backAtEnd = s.connected
	s.mu.Unlock()
}

// caughtUp says the subscriber is connected and holds every topic's
// final seq.
func (s *soakSub) caughtUp(final map[string]uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.connected {
		return false
	}
	for _, t := range s.topics {
		st := s.state[t]
		if f := final[t]; f > 0 && (!st.held || st.anchor || st.awaitReset || st.last != f) {
			return false
		}
	}
	return true
}

// account adds the subscriber's books to fig and names what broke.
func (s *soakSub) account(fig *SoakFigures, final map[string]uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fig.Reconnects += s.reconnects
	fig.DialFailures += s.dialFails
	for _, t := range s.topics {
		st := s.state[t]
		fig.Delivered += st.delivered
		fig.Recovered += st.recovered
		fig.NotRecovered += st.notRec
		fig.Resets += st.resets
		fig.ResetSkipped += st.skipped
		fig.Lags += st.lags
		fig.Snapshots += st.snaps
		fig.Lost += st.lost
		fig.Dups += st.dups
		f := final[t]
		if f == 0 {
			continue
		}
		// From the first publication held to the final one, each was
		// delivered once or passed over by a reset.
		if st.everHeld {
			exp := int64(f-st.first+1) - st.skipped
			fig.Expected += exp
			if exp != st.delivered {
				s.run.violation("%s: %s: %d delivered from s %d to %d, %d passed over by resets: %d expected", s.name(), t, st.delivered, st.first, f, st.skipped, exp)
			}
		}
		if !st.held || st.last != f {
			s.run.violation("%s: %s ends at s %d, the topic at %d", s.name(), t, st.last, f)
		}
	}
	if s.reconnects > 0 && !s.backAtEnd {
		s.run.violation("%s: was cut and never came back", s.name())
	}
}

// soakDefaults fills what the soak scenario needs when unset.
func soakDefaults(c *Config) {
	if len(c.SoakPhases) == 0 {
		c.SoakPhases = []SoakPhase{{Name: "all", Duration: c.Duration}}
	} else {
		var d time.Duration
		for _, p := range c.SoakPhases {
			d += p.Duration
		}
		c.Duration = d
	}
	if c.Drain < 10*time.Second {
		c.Drain = 10 * time.Second
	}
}
