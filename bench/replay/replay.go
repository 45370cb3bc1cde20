package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/tickfan/tickfan/client"
	"github.com/tickfan/tickfan/codec"
)

// Config says where and how to replay. Replay traffic goes to these
// addresses only, never to the ones in the capture.
type Config struct {
	// WSURL is the target's WebSocket URL, e.g. ws://127.0.0.1:8080/ws.
	WSURL string
	// TCPAddr is the target's TCP address (host:port).
	TCPAddr string
	// HTTPURL is the target's HTTP base URL, for PubHTTP.
	HTTPURL string
	// Speed scales the captured pace: 1 as captured, 2 twice as fast;
	// 0 sends each event as soon as the one before it is sent.
	Speed float64
	// Amplify is how many subscriber connections replay each captured
	// subscriber; 0 means 1.
	Amplify int
	// AmplifyPubs multiplies each captured publisher by Amplify too, each
	// copy a connection of its own publishing every publication.
	AmplifyPubs bool
	// PubHTTP publishes through POST /api/publish with APIKey (an HTTP
	// batch stays one batch) instead of TCP pub commands (the default: a
	// batch becomes its items, one pub each).
	PubHTTP bool
	APIKey  string
	// Token, when set, authenticates every TCP publisher and subscriber
	// first (a JWT with the pub claim publishers need); without it the
	// target must allow anonymous pubs of the captured topics.
	Token string
	// SubProto is the subscribers' transport; "" replays each as it was
	// captured (ws-json, ws-msgpack, or tcp for a TCP subscriber).
	SubProto client.Proto
	// Duration caps the whole run; 0 means no cap beyond the capture's
	// span and Drain.
	Duration time.Duration
	// Drain is the longest wait after the last event for replies and
	// deliveries; 0 means 3 s.
	Drain time.Duration
	// ReplyTimeout bounds the wait for each sub's reply and for dials; 0
	// means 10 s.
	ReplyTimeout time.Duration
	// Log, when set, gets progress lines.
	Log io.Writer
}

func (cfg *Config) defaults() {
	if cfg.Amplify <= 0 {
		cfg.Amplify = 1
	}
	if cfg.Drain <= 0 {
		cfg.Drain = 3 * time.Second
	}
	if cfg.ReplyTimeout <= 0 {
		cfg.ReplyTimeout = 10 * time.Second
	}
	if cfg.Speed < 0 {
		cfg.Speed = 0
	}
}

// dialers is how many subscriber connections are opened at once.
const dialers = 64

// maxErrors is how many distinct errors a report keeps as examples.
const maxErrors = 5

// runner is one replay. Its counters are guarded by mu; the event loop
// (Run's goroutine) sends, one reader goroutine per connection receives.
type runner struct {
	cfg Config
	cap *Capture

	mu        sync.Mutex
	holders   map[string]int    // topic: subscriber connections holding it live
	sent      map[pubKey]sentAt // acknowledged publications
	early     []receipt         // receipts whose publication was not acknowledged yet
	hist      *hdrhistogram.Histogram
	rep       Report
	errSeen   map[string]bool
	stop      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
	conns     []*client.Conn
}

type pubKey struct {
	topic string
	seq   uint64
}

type sentAt struct{ at time.Time }

type receipt struct {
	key pubKey
	at  time.Time
}

// pubInfo is a publication sent and not answered yet.
type pubInfo struct {
	topic   string
	at      time.Time
	holders int
}

// Run replays the capture against the target and reports. An error means
// the replay could not start (no connection to the target); what went
// wrong on the way is in the report.
func Run(ctx context.Context, cfg Config, c *Capture) (*Report, error) {
	cfg.defaults()
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	r := &runner{
		cfg: cfg, cap: c,
		holders: map[string]int{}, sent: map[pubKey]sentAt{},
		hist:    hdrhistogram.New(1, int64(time.Minute/time.Microsecond), 3),
		errSeen: map[string]bool{}, stop: make(chan struct{}),
	}
	r.rep.fromCapture(c, cfg)
	begin := time.Now()
	err := r.play(ctx)
	r.drain(ctx)
	r.shutdown()
	r.rep.Elapsed = time.Since(begin)
	r.finish()
	return &r.rep, err
}

func (r *runner) logf(format string, a ...any) {
	if r.cfg.Log != nil {
		fmt.Fprintf(r.cfg.Log, "replay: "+format+"\n", a...)
	}
}

func (r *runner) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rep.ErrorCount++
	if s := err.Error(); !r.errSeen[s] && len(r.rep.Errors) < maxErrors {
		r.errSeen[s] = true
		r.rep.Errors = append(r.rep.Errors, s)
	}
}

// play walks the events in captured order, each at its time scaled by
// Speed. A sub waits for its replies before the next event, so that the
// publications after it find it in place as they did in the capture.
func (r *runner) play(ctx context.Context) error {
	pubs := map[int][]publisher{}
	subs := map[int][]*subscriber{}
	defer func() {
		for _, ps := range pubs {
			for _, p := range ps {
				p.done()
			}
		}
	}()
	if len(r.cap.Events) == 0 {
		return nil
	}
	// Publishers connect before the clock starts, so that a dial neither
	// delays the pace nor counts in the latency; subscribers connect when
	// their first sub is due, as they did.
	for _, st := range r.cap.Streams {
		if st.Pubs == 0 {
			continue
		}
		ps, err := r.dialPublishers(ctx)
		if err != nil && len(pubs) == 0 {
			return err
		}
		pubs[st.ID] = ps
	}
	t0, start := r.cap.Events[0].At, time.Now()
	for i, ev := range r.cap.Events {
		if r.cfg.Speed > 0 {
			due := start.Add(time.Duration(float64(ev.At-t0) / r.cfg.Speed))
			if d := time.Until(due); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-ctx.Done():
					t.Stop()
				case <-t.C:
				}
			}
		}
		if ctx.Err() != nil {
			r.mu.Lock()
			r.rep.NotReplayed = len(r.cap.Events) - i
			r.mu.Unlock()
			r.logf("stopped with %d events left: %v", len(r.cap.Events)-i, ctx.Err())
			return nil
		}
		if ev.Topics != nil {
			ss, ok := subs[ev.Stream]
			if !ok {
				var err error
				ss, err = r.dialSubscribers(ctx, ev.Stream)
				if err != nil && len(ss) == 0 && r.rep.SubscriberConns == 0 && r.rep.PublisherConns == 0 {
					return err
				}
				subs[ev.Stream] = ss
			}
			r.subscribe(ctx, ss, ev.Topics)
			continue
		}
		for _, p := range pubs[ev.Stream] {
			p.publish(ev.Pubs)
		}
	}
	return nil
}

// drain waits until every publication is answered and every expected
// delivery made, for at most Drain.
func (r *runner) drain(ctx context.Context) {
	deadline := time.Now().Add(r.cfg.Drain)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		r.mu.Lock()
		done := r.rep.Acknowledged+r.rep.Refused+r.rep.Unanswered >= r.rep.PubsSent && r.rep.Delivered >= r.rep.Expected
		r.mu.Unlock()
		if done {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *runner) shutdown() {
	r.closeOnce.Do(func() { close(r.stop) })
	r.mu.Lock()
	conns := r.conns
	r.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	r.wg.Wait()
}

// finish matches the receipts that came before their acknowledgement and
// reads the percentiles.
func (r *runner) finish() {
	for _, rc := range r.early {
		if s, ok := r.sent[rc.key]; ok {
			r.record(rc.at.Sub(s.at))
		}
	}
	r.early = nil
	r.rep.Unanswered = r.rep.PubsSent - r.rep.Acknowledged - r.rep.Refused
	r.rep.Latency = latencyOf(r.hist)
}

func (r *runner) record(d time.Duration) {
	us := d.Microseconds()
	if us < 1 {
		us = 1
	}
	_ = r.hist.RecordValue(us)
	r.rep.Matched++
}

// acked is a publication the target placed at seq; every holder of its
// topic when it was sent should get it.
func (r *runner) acked(p pubInfo, seq uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rep.Acknowledged++
	r.rep.Expected += p.holders
	k := pubKey{p.topic, seq}
	r.sent[k] = sentAt{p.at}
}

func (r *runner) refused(err error) {
	r.mu.Lock()
	r.rep.Refused++
	r.mu.Unlock()
	r.fail(fmt.Errorf("publish refused: %w", err))
}

// received is a live publication at a subscriber.
func (r *runner) received(k pubKey, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rep.Delivered++
	if s, ok := r.sent[k]; ok {
		r.record(at.Sub(s.at))
	} else {
		r.early = append(r.early, receipt{k, at})
	}
}

func (r *runner) track(c *client.Conn) {
	r.mu.Lock()
	r.conns = append(r.conns, c)
	r.mu.Unlock()
}

func (r *runner) dial(ctx context.Context, proto client.Proto) (*client.Conn, error) {
	addr := r.cfg.WSURL
	if proto == client.TCP {
		addr = r.cfg.TCPAddr
	}
	c, err := client.Dial(ctx, client.Config{Proto: proto, Addr: addr, DialTimeout: r.cfg.ReplyTimeout})
	if err != nil {
		return nil, err
	}
	if r.cfg.Token != "" {
		if err := c.Auth(0, r.cfg.Token); err != nil {
			c.Close()
			return nil, err
		}
	}
	r.track(c)
	return c, nil
}

// publisher replays one captured publisher on one connection.
type publisher interface {
	publish([]Publication)
	done()
}

// dialPublishers opens the connections of one captured publisher.
func (r *runner) dialPublishers(ctx context.Context) ([]publisher, error) {
	n := 1
	if r.cfg.AmplifyPubs {
		n = r.cfg.Amplify
	}
	var ps []publisher
	for range n {
		if r.cfg.PubHTTP {
			ps = append(ps, r.newHTTPPublisher())
			continue
		}
		c, err := r.dial(ctx, client.TCP)
		if err != nil {
			r.fail(fmt.Errorf("publisher: %w", err))
			return ps, err
		}
		p := &tcpPublisher{r: r, c: c, inflight: map[uint64]pubInfo{}}
		r.wg.Add(1)
		go p.read()
		ps = append(ps, p)
	}
	r.mu.Lock()
	r.rep.PublisherConns += len(ps)
	r.mu.Unlock()
	return ps, nil
}

type tcpPublisher struct {
	r        *runner
	c        *client.Conn
	mu       sync.Mutex
	id       uint64
	inflight map[uint64]pubInfo
	buf      []byte
}

func (p *tcpPublisher) publish(pubs []Publication) {
	datas := make([][]byte, len(pubs))
	for i, pub := range pubs {
		datas[i] = pub.Data
		if !pub.Msgpack {
			var err error
			if datas[i], err = codec.JSONToMsgpack(nil, pub.Data); err != nil {
				p.r.fail(fmt.Errorf("publication of %s: %w", pub.Topic, err))
				datas[i] = nil
			}
		}
	}
	p.buf = p.buf[:0]
	now := time.Now()
	p.r.mu.Lock()
	p.mu.Lock()
	for i, pub := range pubs {
		if datas[i] == nil {
			continue
		}
		p.id++
		p.inflight[p.id] = pubInfo{topic: pub.Topic, at: now, holders: p.r.holders[pub.Topic]}
		p.buf = client.TCP.AppendPub(p.buf, p.id, pub.Topic, datas[i], pub.Snap)
		p.r.rep.PubsSent++
	}
	p.mu.Unlock()
	p.r.mu.Unlock()
	if len(p.buf) == 0 {
		return
	}
	if err := p.c.Write(p.buf); err != nil {
		p.r.fail(fmt.Errorf("publisher: %w", err))
	}
}

func (p *tcpPublisher) done() {}

func (p *tcpPublisher) read() {
	defer p.r.wg.Done()
	for {
		m, err := p.c.Next()
		if err != nil {
			select {
			case <-p.r.stop:
			default:
				p.r.fail(fmt.Errorf("publisher: %w", err))
			}
			return
		}
		switch m.Kind {
		case client.KindPing:
			_ = p.c.Keepalive()
		case client.KindReply:
			if !m.HasID || m.ID == 0 {
				if m.Err != nil {
					p.r.fail(fmt.Errorf("publisher: %v", m.Err))
				}
				continue
			}
			p.mu.Lock()
			info, ok := p.inflight[m.ID]
			delete(p.inflight, m.ID)
			p.mu.Unlock()
			if !ok {
				continue
			}
			if m.Err != nil {
				p.r.refused(fmt.Errorf("%s: %v", info.topic, m.Err))
				continue
			}
			var pos client.Position
			if err := m.DecodeRes(&pos); err != nil {
				p.r.refused(fmt.Errorf("%s: reply: %w", info.topic, err))
				continue
			}
			p.r.acked(info, pos.S)
		case client.KindClose:
			p.r.fail(fmt.Errorf("publisher: server closed: %d %s", m.Code, m.Reason))
		}
	}
}

// httpPublisher posts one captured publish (a batch stays one batch) per
// request, in order, from a goroutine of its own.
type httpPublisher struct {
	r     *runner
	queue chan httpJob
	hc    *http.Client
}

type httpJob struct {
	pubs  []Publication
	infos []pubInfo
}

// httpQueue bounds the publishes waiting for their turn.
const httpQueue = 4096

func (r *runner) newHTTPPublisher() *httpPublisher {
	// A transport of its own: each publisher is a connection of its own.
	tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}
	p := &httpPublisher{r: r, queue: make(chan httpJob, httpQueue), hc: &http.Client{Timeout: r.cfg.ReplyTimeout, Transport: tr}}
	r.wg.Add(1)
	go p.run()
	return p
}

func (p *httpPublisher) publish(pubs []Publication) {
	job := httpJob{pubs: pubs}
	p.r.mu.Lock()
	for _, pub := range pubs {
		job.infos = append(job.infos, pubInfo{topic: pub.Topic, holders: p.r.holders[pub.Topic]})
	}
	p.r.rep.PubsSent += len(pubs)
	p.r.mu.Unlock()
	select {
	case p.queue <- job:
	case <-p.r.stop:
	}
}

func (p *httpPublisher) done() { close(p.queue) }

type httpItemOut struct {
	T string          `json:"t"`
	D json.RawMessage `json:"d"`
	K string          `json:"k,omitempty"`
}

func (p *httpPublisher) run() {
	defer p.r.wg.Done()
	defer p.hc.CloseIdleConnections()
	for {
		var job httpJob
		select {
		case j, ok := <-p.queue:
			if !ok {
				return
			}
			job = j
		case <-p.r.stop:
			return
		}
		items := make([]httpItemOut, 0, len(job.pubs))
		for _, pub := range job.pubs {
			d := pub.Data
			if pub.Msgpack {
				var err error
				if d, err = codec.MsgpackToJSON(nil, pub.Data); err != nil {
					p.r.refused(fmt.Errorf("%s: msgpack data: %w", pub.Topic, err))
					continue
				}
			}
			it := httpItemOut{T: pub.Topic, D: d}
			if pub.Snap {
				it.K = "snap"
			}
			items = append(items, it)
		}
		if len(items) != len(job.pubs) {
			continue
		}
		var body []byte
		if len(items) == 1 {
			body, _ = json.Marshal(items[0])
		} else {
			body, _ = json.Marshal(map[string]any{"batch": items})
		}
		at := time.Now()
		for i := range job.infos {
			job.infos[i].at = at
		}
		positions, err := p.post(body, len(items))
		if err != nil {
			for range items {
				p.r.refused(err)
			}
			continue
		}
		for i, pos := range positions {
			p.r.acked(job.infos[i], pos.S)
		}
	}
}

func (p *httpPublisher) post(body []byte, n int) ([]client.Position, error) {
	req, err := http.NewRequest(http.MethodPost, strings.TrimRight(p.r.cfg.HTTPURL, "/")+"/api/publish", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "apikey "+p.r.cfg.APIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(out))
	}
	var res struct {
		client.Position
		Results []client.Position `json:"results"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, fmt.Errorf("answer %q: %w", clip(out, 64), err)
	}
	if n == 1 {
		res.Results = []client.Position{res.Position}
	}
	if len(res.Results) != n {
		return nil, fmt.Errorf("%d results for %d publications", len(res.Results), n)
	}
	return res.Results, nil
}

// subscriber is one replayed subscriber connection.
type subscriber struct {
	r       *runner
	c       *client.Conn
	mu      sync.Mutex
	id      uint64
	waiting map[uint64][]string // sub id: its topics
	base    map[string]uint64   // topic: the seq its sub reply gave; later ones are live
	replies chan subReply
}

type subReply struct {
	topics []string
	err    error
}

// dialSubscribers opens Amplify connections for one captured subscriber,
// in its captured transport unless SubProto says otherwise.
func (r *runner) dialSubscribers(ctx context.Context, stream int) ([]*subscriber, error) {
	proto := r.cfg.SubProto
	if proto == "" {
		st := r.cap.Streams[stream]
		switch {
		case st.Source == SourceTCP:
			proto = client.TCP
		case st.Msgpack:
			proto = client.WSMsgpack
		default:
			proto = client.WSJSON
		}
	}
	ss := make([]*subscriber, r.cfg.Amplify)
	errs := make([]error, len(ss))
	var wg sync.WaitGroup
	// At most dialers handshakes at once: a burst of thousands overflows
	// the target's accept backlog, and the retransmitted SYNs cost seconds.
	sem := make(chan struct{}, dialers)
	for i := range ss {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			c, err := r.dial(ctx, proto)
			if err != nil {
				errs[i] = err
				return
			}
			ss[i] = &subscriber{r: r, c: c, waiting: map[uint64][]string{}, base: map[string]uint64{}, replies: make(chan subReply, 16)}
		}()
	}
	wg.Wait()
	var out []*subscriber
	for _, s := range ss {
		if s != nil {
			out = append(out, s)
			r.wg.Add(1)
			go s.read()
		}
	}
	var err error
	failed := 0
	for _, e := range errs {
		if e != nil {
			failed++
			if err == nil {
				err = e
			}
		}
	}
	if err != nil {
		err = fmt.Errorf("subscriber: %d of %d connections failed, the first: %w", failed, len(ss), err)
		r.fail(err)
	}
	r.mu.Lock()
	r.rep.SubscriberConns += len(out)
	r.mu.Unlock()
	return out, err
}

// subscribe sends one captured sub on every copy and waits for the
// replies; the topics each copy now holds count as its holders.
func (r *runner) subscribe(ctx context.Context, ss []*subscriber, topics []string) {
	sent := 0
	for _, s := range ss {
		s.mu.Lock()
		s.id++
		id := s.id
		s.waiting[id] = topics
		s.mu.Unlock()
		if err := s.c.Subscribe(id, topics, nil); err != nil {
			r.fail(fmt.Errorf("subscriber: %w", err))
			continue
		}
		sent++
	}
	r.mu.Lock()
	r.rep.SubsSent += sent
	r.mu.Unlock()
	timeout := time.NewTimer(r.cfg.ReplyTimeout)
	defer timeout.Stop()
	for _, s := range ss {
		select {
		case rep := <-s.replies:
			r.mu.Lock()
			if rep.err != nil {
				r.rep.SubsRefused++
			} else {
				r.rep.SubsAcknowledged++
				for _, t := range rep.topics {
					r.holders[t]++
				}
			}
			r.mu.Unlock()
			if rep.err != nil {
				r.fail(fmt.Errorf("sub refused: %w", rep.err))
			}
		case <-timeout.C:
			r.fail(errors.New("sub: no reply in time"))
			return
		case <-ctx.Done():
			return
		}
	}
}

func (s *subscriber) read() {
	defer s.r.wg.Done()
	for {
		m, err := s.c.Next()
		if err != nil {
			select {
			case <-s.r.stop:
			default:
				s.r.fail(fmt.Errorf("subscriber: %w", err))
			}
			return
		}
		at := time.Now()
		switch m.Kind {
		case client.KindPublication:
			if m.Seq <= s.base[m.Topic] {
				s.r.mu.Lock()
				s.r.rep.CatchUp++
				s.r.mu.Unlock()
				continue
			}
			s.r.received(pubKey{m.Topic, m.Seq}, at)
		case client.KindReply:
			s.mu.Lock()
			topics, ok := s.waiting[m.ID]
			delete(s.waiting, m.ID)
			s.mu.Unlock()
			if !ok || !m.HasID {
				if m.Err != nil {
					s.r.fail(fmt.Errorf("subscriber: %v", m.Err))
				}
				continue
			}
			rep := subReply{topics: topics}
			var res map[string]client.SubResult
			if m.Err != nil {
				rep = subReply{err: m.Err}
			} else if err := m.DecodeRes(&res); err != nil {
				rep = subReply{err: err}
			} else {
				for _, t := range topics {
					s.base[t] = res[t].S
				}
			}
			select {
			case s.replies <- rep:
			case <-s.r.stop:
				return
			}
		case client.KindLag:
			s.r.mu.Lock()
			s.r.rep.Lags++
			s.r.mu.Unlock()
		case client.KindReset:
			s.r.mu.Lock()
			s.r.rep.Resets++
			s.r.mu.Unlock()
		case client.KindPing:
			_ = s.c.Keepalive()
		case client.KindClose:
			s.r.fail(fmt.Errorf("subscriber: server closed: %d %s", m.Code, m.Reason))
		}
	}
}
