package client

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tickfan/tickfan/codec"
	"github.com/tickfan/tickfan/topic"
)

// Subscription holds topics across connections: it connects, subscribes,
// and when the connection breaks connects again and subscribes with the
// position of each topic ("since"), so that a topic continues where it
// stopped (Recovered) or is openly started afresh (Reset). It checks the
// stream as it comes: a publication after a hole makes it resubscribe the
// topic from the last one delivered, and one already delivered is
// dropped. What the user receives, through Next, is every publication of
// each topic in order with no gap and no duplicate within an epoch, or a
// Reset first.
//
// One goroutine runs the connections; another, while a token from
// TokenFunc is in use, refreshes it before it expires. Close stops both.
// Next may be called from one goroutine at a time; Stats and Close from
// any.
type Subscription struct {
	cfg    Config
	topics []string
	o      options

	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	// events is the queue between the connection goroutine and Next: at
	// most options.buffer events. When it is full the connection
	// goroutine waits, and so stops reading the socket: the server then
	// treats the client as slow (lag, and after --slow-timeout a close
	// 4005, which is followed by a reconnect with since).
	events chan Event
	done   chan struct{} // closed once the connection goroutine has ended
	err    error         // why it ended; written before done is closed

	stats struct {
		reconnects, recovered, resets, gaps, dups, lags atomic.Int64
	}

	// Owned by the connection goroutine.
	state map[string]*topicState
	conns int
}

// DefaultIdleTimeout is the default of WithIdleTimeout: twice the
// server's default heartbeat (25 s) with a margin.
const DefaultIdleTimeout = 60 * time.Second

// DefaultEventBuffer is the default of WithEventBuffer.
const DefaultEventBuffer = 1024

// DefaultConflate is the default of WithConflate: the server's --conflate
// default.
const DefaultConflate = "ticker.*"

// replyTimeout bounds the wait for the answer to a refresh, and a call
// of TokenFunc.
const replyTimeout = 10 * time.Second

// minRefreshMargin is the least time before a token's expiry that its
// refresh is sent: the round trip and a retry must fit in it.
const minRefreshMargin = 2 * time.Second

type options struct {
	since       map[string]Position
	token       string
	tokenFunc   func(context.Context) (string, error)
	backoff     Backoff
	idle        time.Duration
	conflate    string
	noReconnect bool
	buffer      int
}

// Option configures a Subscription.
type Option func(*options)

// WithSince starts a topic after p, the last publication of it the caller
// holds (kept from an earlier run, say): the first connection subscribes
// with it, so what came after p follows (Recovered) or a Reset does.
func WithSince(topic string, p Position) Option {
	return func(o *options) {
		if o.since == nil {
			o.since = make(map[string]Position)
		}
		o.since[topic] = p
	}
}

// WithToken authenticates every connection with a JWT. A token that
// expires ends the connection (4002) and, with no TokenFunc to give a new
// one, the next auth is refused and the subscription ends.
func WithToken(token string) Option { return func(o *options) { o.token = token } }

// WithTokenFunc gets a token for each connection and for each refresh:
// the subscription sends {"op":"refresh"} with a new token some time
// before the current one expires (a tenth of its lifetime, at least 2 s,
// at most half of it). An error from f fails the connection attempt (and
// is retried with backoff), or the refresh (retried until the token
// expires, when the server closes with 4002 and the subscription
// reconnects). f is called from the subscription's goroutines, at most one
// call at a time, with a context that ends with the subscription.
func WithTokenFunc(f func(ctx context.Context) (string, error)) Option {
	return func(o *options) { o.tokenFunc = f }
}

// WithBackoff sets the waits between connection attempts.
func WithBackoff(b Backoff) Option { return func(o *options) { o.backoff = b } }

// WithIdleTimeout sets how long the server may send nothing at all (the
// server sends a heartbeat every --heartbeat, 25 s by default) before the
// link is presumed dead and the connection is dropped and made again.
// Default DefaultIdleTimeout.
func WithIdleTimeout(d time.Duration) Option { return func(o *options) { o.idle = d } }

// WithConflate names the conflated topics, as the server's --conflate:
// patterns separated by commas, or "-" for none. On those topics the
// server keeps only the latest value for a slow client, so seq only
// increases and a jump is no hole. Default DefaultConflate.
func WithConflate(patterns string) Option { return func(o *options) { o.conflate = patterns } }

// WithoutReconnect makes the first end of a connection end the
// subscription: Next returns why. Holes in the stream are still repaired.
func WithoutReconnect() Option { return func(o *options) { o.noReconnect = true } }

// WithEventBuffer bounds the events waiting for Next (at least 1).
// Default DefaultEventBuffer. When that many wait, the subscription stops
// reading its socket until Next takes one: the server then sees a slow
// client and sends lag, resuming from its history once the client reads
// again (Lag, Resumed), and closes a client slow past its --slow-timeout
// (4005), after which the subscription reconnects with since. Nothing is
// lost either way; memory stays bounded.
func WithEventBuffer(n int) Option { return func(o *options) { o.buffer = n } }

// Subscribe starts a Subscription to topics on the server of cfg. It
// returns at once: connecting, and what comes of it, are events of Next.
// It fails only on bad arguments. Any goroutine may call it.
func Subscribe(cfg Config, topics []string, opts ...Option) (*Subscription, error) {
	o := options{idle: DefaultIdleTimeout, conflate: DefaultConflate, buffer: DefaultEventBuffer}
	for _, opt := range opts {
		opt(&o)
	}
	if cfg.Addr == "" {
		return nil, errors.New("subscribe: no server address (Config.Addr)")
	}
	if _, err := ParseProto(string(cfg.proto())); err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	if len(topics) == 0 {
		return nil, errors.New("subscribe: no topics")
	}
	for _, t := range topics {
		if err := topic.ValidName(t); err != nil {
			return nil, fmt.Errorf("subscribe %q: %w", t, err)
		}
	}
	for t := range o.since {
		if !slices.Contains(topics, t) {
			return nil, fmt.Errorf("subscribe: since of %q, which is not among the topics %q", t, topics)
		}
	}
	var conflate topic.Patterns
	if o.conflate != "-" {
		var err error
		if conflate, err = topic.ParsePatterns(o.conflate); err != nil {
			return nil, fmt.Errorf("subscribe: conflate patterns: %w", err)
		}
	}
	if o.idle <= 0 {
		o.idle = DefaultIdleTimeout
	}
	o.buffer = max(o.buffer, 1)
	o.backoff = o.backoff.withDefaults()
	s := &Subscription{
		cfg: cfg, topics: slices.Clone(topics), o: o,
		events: make(chan Event, o.buffer), done: make(chan struct{}),
		state: make(map[string]*topicState, len(topics)),
	}
	for _, t := range topics {
		st := &topicState{conflated: conflate.Match(t)}
		if p, ok := o.since[t]; ok {
			st.epoch, st.last, st.held = p.E, p.S, true
		}
		s.state[t] = st
	}
	s.ctx, s.stop = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.run()
	return s, nil
}

// Next returns the next event, waiting for it until ctx ends. Once the
// subscription has ended it returns the events still queued, then why it
// ended: ErrClosed after Close; a refused auth or sub (401, 403, 400: a
// *RefusedError) or a close that asks not to come back (4003,
// 4004: a wrapped *CloseError), which reconnecting would only repeat;
// with WithoutReconnect, whatever ended the connection. Only one
// goroutine at a time may call Next.
func (s *Subscription) Next(ctx context.Context) (Event, error) {
	select {
	case ev := <-s.events:
		return ev, nil
	default:
	}
	select {
	case ev := <-s.events:
		return ev, nil
	case <-s.done:
		select {
		case ev := <-s.events:
			return ev, nil
		default:
			return nil, s.err
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close ends the subscription: it closes the connection and returns once
// the subscription's goroutines have ended. Any goroutine may call it,
// more than once.
func (s *Subscription) Close() error {
	s.stop()
	s.wg.Wait()
	return nil
}

// Stats counts what the subscription went through.
type Stats struct {
	Reconnects   int64 // connections made after the first
	Recovered    int64 // topics continued after a reconnect (rec true)
	Resets       int64 // Reset events: continuity broken, state dropped
	GapsRepaired int64 // holes in the stream filled by resubscribing with since
	Duplicates   int64 // publications already delivered, dropped
	Lags         int64 // lag messages: the server stopped pushing a topic for a while
}

// Stats returns the counters so far. Any goroutine may call it.
func (s *Subscription) Stats() Stats {
	return Stats{
		Reconnects: s.stats.reconnects.Load(), Recovered: s.stats.recovered.Load(),
		Resets: s.stats.resets.Load(), GapsRepaired: s.stats.gaps.Load(),
		Duplicates: s.stats.dups.Load(), Lags: s.stats.lags.Load(),
	}
}

// permanent marks an error that reconnecting would only repeat;
// connections takes the error out of it.
type permanent struct{ error }

func (s *Subscription) run() {
	defer s.wg.Done()
	s.err = s.connections()
	close(s.done)
}

// connections connects again and again until the subscription is closed
// or an error is permanent, and returns why it ended.
func (s *Subscription) connections() error {
	fails := 0
	for {
		up, err := s.connect()
		if s.ctx.Err() != nil {
			return ErrClosed
		}
		if p, ok := err.(permanent); ok {
			return p.error
		}
		if s.o.noReconnect {
			return err
		}
		if !up.IsZero() && time.Since(up) >= s.o.backoff.Healthy {
			fails = 0
		}
		delay := s.o.backoff.Delay(fails)
		fails++
		ev := Disconnected{Err: err, Retry: delay}
		var ce *CloseError
		if errors.As(err, &ce) {
			ev.Code = ce.Code
		}
		if !s.emit(ev) {
			return ErrClosed
		}
		if !sleep(s.ctx, delay) {
			return ErrClosed
		}
	}
}

// emit queues ev for Next; false when the subscription was closed
// meanwhile.
func (s *Subscription) emit(ev Event) bool {
	select {
	case s.events <- ev:
		return true
	case <-s.ctx.Done():
		return false
	}
}

// token returns the token for a new connection.
func (s *Subscription) token(ctx context.Context) (string, error) {
	if s.o.tokenFunc == nil {
		return s.o.token, nil
	}
	ctx, cancel := context.WithTimeout(ctx, replyTimeout)
	defer cancel()
	tok, err := s.o.tokenFunc(ctx)
	if err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	return tok, nil
}

// connect makes one connection and serves it until it ends; up is when
// its sub was answered (zero if it never was).
func (s *Subscription) connect() (up time.Time, err error) {
	tok, err := s.token(s.ctx)
	if err != nil {
		return up, err
	}
	c, err := Dial(s.ctx, s.cfg)
	if err != nil {
		return up, err
	}
	ctx, cancel := context.WithCancel(s.ctx)
	cs := &connection{s: s, c: c, ctx: ctx, pending: make(map[uint64]request), refreshed: make(chan Message, 1)}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer func() {
		cancel()
		stop()
		c.Close()
		cs.wg.Wait()
	}()
	if s.conns > 0 {
		s.stats.reconnects.Add(1)
	}
	s.conns++
	err = cs.serve(tok)
	return cs.up, err
}

// request is a command awaiting its reply.
type request struct {
	op     string   // auth, sub or unsub
	topics []string // sub, unsub
	since  map[string]Position
	gap    bool // a resubscription to repair a hole
}

// connection is one connection of a Subscription. Its fields belong to
// the connection goroutine, but for those the refresher uses, as marked.
type connection struct {
	s   *Subscription
	c   *Conn
	ctx context.Context // ends with the connection
	wg  sync.WaitGroup  // the refresher

	ids       atomic.Uint64 // request ids: the refresher takes some
	refreshID atomic.Uint64 // the id of the refresh awaiting its reply
	refreshed chan Message  // its reply, to the refresher

	pending map[uint64]request
	up      time.Time
}

func (cs *connection) send(req request, write func(id uint64) error) error {
	id := cs.ids.Add(1)
	cs.pending[id] = req
	return write(id)
}

// serve authenticates, subscribes and reads the connection until it ends.
func (cs *connection) serve(tok string) error {
	s := cs.s
	if tok != "" {
		if err := cs.send(request{op: "auth"}, func(id uint64) error { return cs.c.Auth(id, tok) }); err != nil {
			return err
		}
	} else if !s.emit(Connected{Addr: s.cfg.Addr, Attempt: s.conns - 1}) {
		return ErrClosed
	}
	// Commands are answered in order, so the sub needs not wait for the
	// auth reply: the server has checked the token when it reads the sub.
	since := make(map[string]Position)
	for _, t := range s.topics {
		st := s.state[t]
		if p, ok := st.position(); ok {
			since[t] = p
		}
		st.pending = true
	}
	req := request{op: "sub", topics: s.topics, since: since}
	if err := cs.send(req, func(id uint64) error { return cs.c.Subscribe(id, s.topics, since) }); err != nil {
		return err
	}
	// Any byte counts: the server sends its heartbeat every --heartbeat.
	cs.c.SetIdleTimeout(s.o.idle)
	for {
		m, err := cs.c.Next()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return ErrIdle
			}
			return err
		}
		if err := cs.handle(m); err != nil {
			return err
		}
	}
}

func (cs *connection) handle(m Message) error {
	s := cs.s
	switch m.Kind {
	case KindPing:
		return cs.c.Keepalive()
	case KindReply:
		return cs.reply(m)
	case KindClose:
		ce := &CloseError{Code: m.Code, Reason: m.Reason, op: true}
		if d, ok := codec.DisconnectOf(m.Code); ok && !d.Reconnect {
			return permanent{ce}
		}
		return ce
	case KindPublication, KindReset, KindLag:
		st := s.state[m.Topic]
		if st == nil || st.pending {
			// Not ours, or of the subscription a sub replaces: the
			// sub's reply says where the topic stands.
			return nil
		}
		var evs []Event
		var resub bool
		switch m.Kind {
		case KindPublication:
			evs, resub = st.publication(m, s)
		case KindReset:
			evs = st.reset(m, s)
		case KindLag:
			evs = st.lag(m, s)
		}
		for _, ev := range evs {
			if !s.emit(ev) {
				return ErrClosed
			}
		}
		if resub {
			return cs.resubscribe(m.Topic, st)
		}
	}
	return nil
}

// resubscribe repairs a hole in a topic: unsub, then sub with since the
// last publication delivered. Commands are answered in order and the
// topic's publications stop with the unsub, so what comes of it until
// the sub's reply is dropped (st.pending); after the reply come the
// missing publications (rec true) or a reset.
func (cs *connection) resubscribe(t string, st *topicState) error {
	st.pending = true
	topics := []string{t}
	since := map[string]Position{t: {E: st.epoch, S: st.last}}
	if err := cs.send(request{op: "unsub", topics: topics}, func(id uint64) error { return cs.c.Unsubscribe(id, topics) }); err != nil {
		return err
	}
	return cs.send(request{op: "sub", topics: topics, since: since, gap: true},
		func(id uint64) error { return cs.c.Subscribe(id, topics, since) })
}

// RefusedError is a command of the subscription that the server refused
// (an auth, a sub), with its PROTOCOL.md code.
type RefusedError struct {
	Op  string
	Err *codec.Error
}

func (e *RefusedError) Error() string {
	return e.Op + " refused: " + strconv.Itoa(e.Err.Code) + " " + e.Err.Msg
}

func (e *RefusedError) Unwrap() error { return e.Err }

// refusal is the error of a refused command: permanent unless the code
// says it may pass (429 rate or limit, 500, 503 backend down).
func refusal(op string, e *codec.Error) error {
	err := &RefusedError{Op: op, Err: e}
	switch e.Code {
	case codec.CodeTooMany, codec.CodeInternal, codec.CodeUnavailable:
		return err
	}
	return permanent{err}
}

func (cs *connection) reply(m Message) error {
	s := cs.s
	if !m.HasID {
		if m.Err != nil {
			// The server could not read a command of ours.
			return fmt.Errorf("server: %w", m.Err)
		}
		return nil // the answer to a keepalive
	}
	if m.ID == cs.refreshID.Load() {
		select {
		case cs.refreshed <- m:
		default:
		}
		return nil
	}
	req, ok := cs.pending[m.ID]
	if !ok {
		return nil
	}
	delete(cs.pending, m.ID)
	switch req.op {
	case "auth":
		if m.Err != nil {
			return refusal("auth", m.Err)
		}
		var res authResult
		if err := m.DecodeRes(&res); err != nil {
			return fmt.Errorf("auth reply: %w", err)
		}
		ev := Connected{Addr: s.cfg.Addr, Attempt: s.conns - 1, User: res.Sub}
		if res.Exp > 0 {
			ev.Expires = time.Unix(res.Exp, 0)
			if s.o.tokenFunc != nil {
				cs.wg.Add(1)
				go cs.refresher(ev.Expires)
			}
		}
		if !s.emit(ev) {
			return ErrClosed
		}
	case "sub":
		if m.Err != nil {
			return refusal("sub", m.Err)
		}
		var res map[string]SubResult
		if err := m.DecodeRes(&res); err != nil {
			return fmt.Errorf("sub reply: %w", err)
		}
		for _, t := range req.topics {
			r, ok := res[t]
			if !ok {
				return fmt.Errorf("sub reply without %s", t)
			}
			p, withSince := req.since[t]
			for _, ev := range s.state[t].subscribed(t, r, p, withSince, req.gap, s) {
				if !s.emit(ev) {
					return ErrClosed
				}
			}
		}
		if cs.up.IsZero() {
			cs.up = time.Now()
		}
	}
	return nil
}

// authResult is the res of auth and refresh.
type authResult struct {
	Sub string `json:"sub" msgpack:"sub"`
	Exp int64  `json:"exp" msgpack:"exp"`
}

// refreshMargin is how long before a token's expiry its refresh is sent.
func refreshMargin(lifetime time.Duration) time.Duration {
	return min(max(lifetime/10, minRefreshMargin), lifetime/2)
}

// refresher sends a new token some time before the current one expires,
// for as long as the connection lasts. A refresh that fails is tried
// again with backoff; if none succeeds in time the server closes with
// 4002 and the subscription reconnects with a new token.
func (cs *connection) refresher(exp time.Time) {
	defer cs.wg.Done()
	s := cs.s
	lifetime := time.Until(exp)
	for fails := 0; ; {
		wait := time.Until(exp) - refreshMargin(lifetime)
		if fails > 0 {
			wait = s.o.backoff.Delay(fails - 1)
		}
		if !sleep(cs.ctx, wait) {
			return
		}
		next, err := cs.refresh()
		if cs.ctx.Err() != nil {
			return
		}
		if err != nil {
			fails++
			continue
		}
		fails = 0
		lifetime, exp = time.Until(next), next
	}
}

// refresh sends one refresh and waits for its reply.
func (cs *connection) refresh() (exp time.Time, err error) {
	tok, err := cs.s.token(cs.ctx)
	if err != nil {
		return exp, err
	}
	id := cs.ids.Add(1)
	cs.refreshID.Store(id)
	if err := cs.c.Refresh(id, tok); err != nil {
		return exp, err
	}
	t := time.NewTimer(replyTimeout)
	defer t.Stop()
	select {
	case m := <-cs.refreshed:
		if m.Err != nil {
			return exp, m.Err
		}
		var res authResult
		if err := m.DecodeRes(&res); err != nil {
			return exp, err
		}
		return time.Unix(res.Exp, 0), nil
	case <-t.C:
		return exp, errors.New("no answer to refresh")
	case <-cs.ctx.Done():
		return exp, cs.ctx.Err()
	}
}

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
