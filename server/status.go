package server

import (
	"encoding/json"
	rtmetrics "runtime/metrics"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/tickfan/tickfan/auth"
	"github.com/tickfan/tickfan/codec"
	"github.com/tickfan/tickfan/server/reactor"
	"github.com/tickfan/tickfan/topic"
)

// The live status page's data (status_http.go serves it). One sampler
// goroutine reads the node's counters once a second, keeps the rates of
// the last minutes in a ring, and encodes the snapshot once for every
// page that watches (twice: with the history for a page that opens, and
// without it): the pages cost the node those encodings a second, not two
// each.
const (
	statusEvery = time.Second
	// statusHistory is the samples kept, one a statusEvery: a page opened
	// now draws the last five minutes at once.
	statusHistory = 300
	// statusTopN topics are listed by publication rate, and half as many
	// by subscribers (one list, each topic once).
	statusTopN = 20
	// statusClosesWindow is the seconds of closes the page counts by code.
	statusClosesWindow = 60
	// statusWatch is how long one GET /api/status keeps the topic scan on
	// without a page streaming.
	statusWatch = 10 * time.Second
	// statusScanShare: a topic scan waits at least this many times its
	// own duration before the next, so that the scan takes at most 2% of
	// one core: a scan a second while it takes up to 20 ms (some tens of
	// thousands of topics here), one every 30 to 40 s at a million
	// (BenchmarkStatusScan).
	statusScanShare = 50
	// statusScanWait is how long a sample waits for the scan it started.
	statusScanWait = 50 * time.Millisecond
	// maxStatusStreams bounds the pages streaming at once (503 past it).
	maxStatusStreams = 16
)

// statusSampler makes the status snapshots. The fields after mu belong to
// the sampler goroutine (and to startStatus before it runs).
type statusSampler struct {
	s     *Server
	start time.Time
	// streams counts the open GET /api/status/stream; watchUntil (unix
	// nanos) keeps the topic scan on after a GET /api/status.
	streams    atomic.Int32
	watchUntil atomic.Int64
	end        chan struct{} // closed on drain or shutdown: streams end, the sampler stops
	endOnce    sync.Once
	done       chan struct{} // closed when the sampler has stopped

	mu  sync.Mutex
	cur *statusFrame

	prev      statusCounters
	prevAt    time.Time
	ring      [statusHistory]statusPoint
	ringLen   int
	ringAt    int // where the next point goes
	closes    [statusClosesWindow + 1][]uint64
	closesLen int
	closesAt  int
	loopsPrev [][2]uint64 // per loop: deliveries, bytes out
	topics    statusTopics
	scans     chan topicScan // cap 1: the scan that ran finished
	scanning  bool           // a scan runs (Engine.Sample allows one at a time)
	scanAt    time.Time      // when the newest finished scan began
	nextScan  time.Time
	cpuPrev   time.Duration
	memSample []rtmetrics.Sample
}

// statusFrame is one encoded snapshot. next is closed once succ, the
// frame after it, is set: the streams walk the chain.
type statusFrame struct {
	at     time.Time
	scanAt time.Time // the topics' scan it lists
	snap   []byte    // the snapshot
	full   []byte    // the snapshot with the history
	next   chan struct{}
	succ   *statusFrame
}

// statusCounters are the cumulative counters whose rates the page shows.
type statusCounters struct {
	pubs, deliveries, bytesOut, lags, resumes, resets float64
}

// statusPoint is one sample of the history.
type statusPoint struct {
	t     int64 // unix seconds
	rates statusRates
	conns int
	slow  int
}

type statusRates struct {
	Pubs       float64 `json:"publications"`
	Deliveries float64 `json:"deliveries"`
	BytesOut   float64 `json:"bytes_out"`
	Lags       float64 `json:"lags"`
	Resumes    float64 `json:"resumes"`
	Resets     float64 `json:"resets"`
}

// statusSnapshot is what GET /api/status and each stream event carry:
// aggregate counters, and topic names only an anonymous client may read.
type statusSnapshot struct {
	Time        int64       `json:"time"` // unix milliseconds
	Uptime      float64     `json:"uptime_s"`
	Draining    bool        `json:"draining"`
	Conns       statusConns `json:"conns"`
	Subs        int64       `json:"subscriptions"`
	Topics      int         `json:"topics"`
	Rates       statusRates `json:"rates"` // per second, over the last sample
	Slow        int64       `json:"slow_clients"`
	InputPaused int64       `json:"input_paused"`
	QueuedBytes int64       `json:"queued_bytes"`
	// Closes counts the connections the server closed in the last
	// ClosesWindow seconds (less while the node is younger), by code.
	Closes       []statusClose `json:"closes"`
	ClosesWindow float64       `json:"closes_window_s"`
	Loops        []statusLoop  `json:"loops"`
	Memory       statusMemory  `json:"memory"`
	// CPU is the process's CPU time per second of the last sample, in
	// cores: the loops' busy share is in it (the loops do not time their
	// own work: that would take a clock read per event).
	CPU     float64         `json:"cpu_cores"`
	Redis   *statusRedis    `json:"redis,omitempty"`
	TopicsL statusTopics    `json:"topic_list"`
	History *statusHistJSON `json:"history,omitempty"`
}

type statusConns struct {
	WS   int64 `json:"ws"`
	TCP  int64 `json:"tcp"`
	HTTP int64 `json:"http"`
}

type statusClose struct {
	Code    int    `json:"code"`
	Meaning string `json:"meaning"`
	Recent  uint64 `json:"recent"`
	Total   uint64 `json:"total"`
}

type statusLoop struct {
	Conns      int64   `json:"conns"`
	Deliveries float64 `json:"deliveries"` // per second
	BytesOut   float64 `json:"bytes_out"`  // per second
	Queued     int64   `json:"queued_bytes"`
}

type statusMemory struct {
	RSS        uint64 `json:"rss"` // 0 where the system does not say (not Linux)
	Heap       uint64 `json:"heap"`
	GoTotal    uint64 `json:"go_total"` // every byte the Go runtime has mapped
	Goroutines uint64 `json:"goroutines"`
}

type statusRedis struct {
	Up         bool   `json:"up"`
	Cluster    bool   `json:"cluster"`
	ShardsUp   int    `json:"shards_up"`
	Shards     int    `json:"shards"`
	Following  int    `json:"following"`
	Published  uint64 `json:"published"`
	Received   uint64 `json:"received"`
	Connects   uint64 `json:"connects"`
	ProbesLost uint64 `json:"probes_lost"`
}

// statusTopics is the topic list: the busiest public topics, or why there
// is none.
type statusTopics struct {
	// Hidden says why no name is listed (--require-auth: an anonymous
	// client may read none).
	Hidden string        `json:"hidden,omitempty"`
	Top    []statusTopic `json:"top"`
	// Sampling is false while no page watches: the list is then as old as
	// Age says.
	Sampling bool    `json:"sampling"`
	Scanned  int     `json:"scanned"`
	ScanMS   float64 `json:"scan_ms"`
	Every    float64 `json:"every_s"`
	Age      float64 `json:"age_s"`
}

type statusTopic struct {
	Name string `json:"t"`
	Subs int    `json:"subs"`
	Seq  uint64 `json:"s"`
	// Rate is publications per second since the previous scan; null
	// right after a pause of the scan.
	Rate *float64 `json:"rate"`
}

// statusHistJSON is the ring, oldest first, one array per series.
type statusHistJSON struct {
	T          []int64   `json:"t"`
	Pubs       []float64 `json:"publications"`
	Deliveries []float64 `json:"deliveries"`
	BytesOut   []float64 `json:"bytes_out"`
	Lags       []float64 `json:"lags"`
	Resumes    []float64 `json:"resumes"`
	Resets     []float64 `json:"resets"`
	Conns      []int     `json:"conns"`
	Slow       []int     `json:"slow_clients"`
}

// startStatus makes the first snapshot and starts the sampler.
func (s *Server) startStatus() {
	ss := &statusSampler{
		s: s, start: time.Now(),
		end: make(chan struct{}), done: make(chan struct{}), scans: make(chan topicScan, 1),
		loopsPrev: make([][2]uint64, len(s.loops)),
		memSample: []rtmetrics.Sample{
			{Name: "/memory/classes/heap/objects:bytes"},
			{Name: "/memory/classes/total:bytes"},
			{Name: "/sched/goroutines:goroutines"},
		},
	}
	s.status = ss
	ss.sample(time.Now())
	go ss.run()
}

// stopStatus ends the status streams and the sampler; later calls do
// nothing.
func (s *Server) stopStatus() {
	if s.status != nil {
		s.status.endOnce.Do(func() { close(s.status.end) })
	}
}

func (ss *statusSampler) run() {
	defer close(ss.done)
	t := time.NewTicker(statusEvery)
	defer t.Stop()
	for {
		select {
		case <-ss.end:
			return
		case now := <-t.C:
			ss.sample(now)
		}
	}
}

// current returns the newest frame.
func (ss *statusSampler) current() *statusFrame {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.cur
}

// watched reports whether a page streams, or one asked lately.
func (ss *statusSampler) watched(now time.Time) bool {
	return ss.streams.Load() > 0 || now.UnixNano() < ss.watchUntil.Load()
}

// sample reads the counters, scans the topics when a page watches, and
// publishes the encoded frame.
func (ss *statusSampler) sample(now time.Time) {
	s := ss.s
	m := s.metrics
	c := statusCounters{
		pubs: counterValue(m.publications), lags: counterValue(m.lags),
		resumes: counterValue(m.resumes), resets: counterValue(m.resets),
	}
	snap := statusSnapshot{
		Time: now.UnixMilli(), Uptime: now.Sub(ss.start).Seconds(), Draining: s.draining.Load(),
		Conns: statusConns{
			WS: int64(counterValue(m.conns(reactor.WebSocket))), TCP: int64(counterValue(m.conns(reactor.TCP))), HTTP: int64(counterValue(m.connsHTTP)),
		},
		Subs: int64(counterValue(m.subscriptions)), Topics: s.engine.Topics(),
		Slow: int64(counterValue(m.slowClients)), InputPaused: int64(counterValue(m.inputPaused)),
		QueuedBytes: s.queuedBytes(nil),
	}
	dt := now.Sub(ss.prevAt).Seconds()
	rate := func(cur, prev float64) float64 {
		if ss.prevAt.IsZero() || dt <= 0 || cur < prev {
			return 0
		}
		return (cur - prev) / dt
	}
	snap.Loops = make([]statusLoop, len(s.loops))
	for i, l := range s.loops {
		d, b := l.stats.deliveries.Load(), l.stats.bytesOut.Load()
		c.deliveries += float64(d)
		c.bytesOut += float64(b)
		snap.Loops[i] = statusLoop{
			Conns: l.open.Load(), Queued: l.queuedPub.Load(),
			Deliveries: rate(float64(d), float64(ss.loopsPrev[i][0])), BytesOut: rate(float64(b), float64(ss.loopsPrev[i][1])),
		}
		ss.loopsPrev[i] = [2]uint64{d, b}
	}
	snap.Rates = statusRates{
		Pubs: rate(c.pubs, ss.prev.pubs), Deliveries: rate(c.deliveries, ss.prev.deliveries),
		BytesOut: rate(c.bytesOut, ss.prev.bytesOut), Lags: rate(c.lags, ss.prev.lags),
		Resumes: rate(c.resumes, ss.prev.resumes), Resets: rate(c.resets, ss.prev.resets),
	}
	if cpu := processCPU(); cpu > 0 && ss.cpuPrev > 0 && dt > 0 {
		snap.CPU = (cpu - ss.cpuPrev).Seconds() / dt
		ss.cpuPrev = cpu
	} else {
		ss.cpuPrev = cpu
	}
	ss.prev, ss.prevAt = c, now
	snap.Closes, snap.ClosesWindow = ss.sampleCloses(now)
	snap.Memory = ss.memory()
	snap.Redis = ss.redis()
	snap.TopicsL = ss.sampleTopics(now)

	ss.ring[ss.ringAt] = statusPoint{
		t: now.Unix(), rates: snap.Rates,
		conns: int(snap.Conns.WS + snap.Conns.TCP + snap.Conns.HTTP), slow: int(snap.Slow),
	}
	ss.ringAt = (ss.ringAt + 1) % statusHistory
	ss.ringLen = min(ss.ringLen+1, statusHistory)

	f := &statusFrame{at: now, scanAt: ss.scanAt, next: make(chan struct{})}
	f.snap, _ = json.Marshal(snap)
	snap.History = ss.history()
	f.full, _ = json.Marshal(snap)
	ss.mu.Lock()
	old := ss.cur
	ss.cur = f
	ss.mu.Unlock()
	if old != nil {
		old.succ = f
		close(old.next)
	}
}

// sampleCloses keeps the close counters of the last minute and returns
// what each code counted in it.
func (ss *statusSampler) sampleCloses(now time.Time) ([]statusClose, float64) {
	cur := make([]uint64, len(protocolCloses))
	for i, code := range protocolCloses {
		cur[i] = uint64(counterValue(ss.s.metrics.byClose[code]))
	}
	ss.closes[ss.closesAt] = cur
	ss.closesAt = (ss.closesAt + 1) % len(ss.closes)
	ss.closesLen = min(ss.closesLen+1, len(ss.closes))
	oldest := ss.closes[(ss.closesAt-ss.closesLen+len(ss.closes))%len(ss.closes)]
	out := make([]statusClose, len(protocolCloses))
	for i, code := range protocolCloses {
		d, _ := codec.DisconnectOf(code)
		out[i] = statusClose{Code: code, Meaning: d.Reason, Recent: cur[i] - oldest[i], Total: cur[i]}
	}
	return out, float64(ss.closesLen-1) * statusEvery.Seconds()
}

func (ss *statusSampler) memory() statusMemory {
	rtmetrics.Read(ss.memSample)
	val := func(i int) uint64 {
		if ss.memSample[i].Value.Kind() == rtmetrics.KindUint64 {
			return ss.memSample[i].Value.Uint64()
		}
		return 0
	}
	return statusMemory{RSS: processRSS(), Heap: val(0), GoTotal: val(1), Goroutines: val(2)}
}

func (ss *statusSampler) redis() *statusRedis {
	b := ss.s.redis
	if b == nil {
		return nil
	}
	st := b.Stats()
	r := &statusRedis{
		Up: b.Ready() == nil, Cluster: b.Cluster(), Following: b.Following(),
		Published: st.Published.Load(), Received: st.Received.Load(),
		Connects: st.Rebuilds.Load(), ProbesLost: st.ProbesLost.Load(),
	}
	r.ShardsUp, r.Shards = b.Shards()
	return r
}

// sampleTopics starts a topic scan when a page watches and the last
// scan's cost allows, and returns the list of the newest finished scan
// with its age. A scan runs in a goroutine of its own: the sample waits
// statusScanWait for it, so a small node's list is of this second, and
// a node of a million topics (a scan of about a second) keeps its
// samples on time and shows the list a sample later.
func (ss *statusSampler) sampleTopics(now time.Time) statusTopics {
	if ss.s.cfg.RequireAuth {
		return statusTopics{Hidden: "--require-auth is set: an anonymous client may read no topic, so none is named", Top: []statusTopic{}}
	}
	ss.topics.Sampling = ss.watched(now)
	if ss.topics.Sampling && !ss.scanning && !now.Before(ss.nextScan) {
		ss.scanning = true
		prev, every := ss.scanAt, time.Duration(ss.topics.Every*float64(time.Second))
		known := !prev.IsZero() && now.Sub(prev) <= 3*max(statusEvery, every)
		go func() {
			began := time.Now()
			top, n := scanTopics(ss.s.engine, now.Sub(prev), known)
			ss.scans <- topicScan{top: top, scanned: n, at: now, cost: time.Since(began)}
		}()
	}
	if ss.scanning {
		wait := time.NewTimer(statusScanWait)
		select {
		case sc := <-ss.scans:
			ss.scanning = false
			ss.topics.Top, ss.topics.Scanned = sc.top, sc.scanned
			ss.topics.ScanMS = float64(sc.cost.Microseconds()) / 1000
			every := max(statusEvery, statusScanShare*sc.cost)
			ss.topics.Every = every.Seconds()
			ss.scanAt, ss.nextScan = sc.at, sc.at.Add(every-statusEvery/10) // a tick early is on time
		case <-wait.C:
		}
		wait.Stop()
	}
	if ss.topics.Top == nil {
		ss.topics.Top = []statusTopic{}
	}
	if !ss.scanAt.IsZero() {
		ss.topics.Age = now.Sub(ss.scanAt).Seconds()
	}
	return ss.topics
}

// topicScan is a finished scan: what it listed, of how many topics, when
// it began and how long it took.
type topicScan struct {
	top     []statusTopic
	scanned int
	at      time.Time
	cost    time.Duration
}

// scanTopics visits every topic and keeps the statusTopN busiest public
// ones by publication rate and half as many by subscribers, busiest first.
// Rates are given when ratesKnown: the previous scan was since ago.
func scanTopics(e *topic.Engine, since time.Duration, ratesKnown bool) ([]statusTopic, int) {
	byRate, bySubs := topN{n: statusTopN, less: lessRate}, topN{n: statusTopN / 2, less: lessSubs}
	secs := since.Seconds()
	n := e.Sample(func(ts topic.TopicSample) {
		if !auth.CanRead(nil, ts.Name) {
			return // private: an anonymous client may not know it exists
		}
		st := scanned{name: ts.Name, subs: ts.Subscribers, seq: ts.Seq, rate: -1}
		if ratesKnown {
			st.rate = float64(ts.Published) / secs
		}
		byRate.add(st)
		bySubs.add(st)
	})
	list := byRate.items
	for _, t := range bySubs.items {
		if !slices.ContainsFunc(list, func(o scanned) bool { return o.name == t.name }) {
			list = append(list, t)
		}
	}
	slices.SortStableFunc(list, func(a, b scanned) int {
		switch {
		case lessRate(b, a):
			return -1
		case lessRate(a, b):
			return 1
		}
		return 0
	})
	out := make([]statusTopic, len(list))
	for i, t := range list {
		out[i] = statusTopic{Name: t.name, Subs: t.subs, Seq: t.seq}
		if t.rate >= 0 {
			out[i].Rate = &list[i].rate
		}
	}
	return out, n
}

// scanned is a topic as the scan ranks it; rate is -1 when not known.
type scanned struct {
	name string
	subs int
	seq  uint64
	rate float64
}

// lessRate orders by rate, then subscribers, then name (so that equal
// topics keep one order from scan to scan).
func lessRate(a, b scanned) bool {
	if a.rate != b.rate {
		return a.rate < b.rate
	}
	if a.subs != b.subs {
		return a.subs < b.subs
	}
	return a.name > b.name
}

func lessSubs(a, b scanned) bool {
	if a.subs != b.subs {
		return a.subs < b.subs
	}
	return lessRate(a, b)
}

// topN keeps the n greatest items by less, greatest first.
type topN struct {
	n     int
	items []scanned
	less  func(a, b scanned) bool
}

func (t *topN) add(x scanned) {
	if len(t.items) == t.n {
		if !t.less(t.items[t.n-1], x) {
			return
		}
		t.items = t.items[:t.n-1]
	}
	i := len(t.items)
	for i > 0 && t.less(t.items[i-1], x) {
		i--
	}
	t.items = slices.Insert(t.items, i, x)
}

// history returns the ring, oldest first.
func (ss *statusSampler) history() *statusHistJSON {
	n := ss.ringLen
	h := &statusHistJSON{
		T: make([]int64, n), Pubs: make([]float64, n), Deliveries: make([]float64, n), BytesOut: make([]float64, n),
		Lags: make([]float64, n), Resumes: make([]float64, n), Resets: make([]float64, n), Conns: make([]int, n), Slow: make([]int, n),
	}
	for i := range n {
		p := ss.ring[(ss.ringAt-n+i+statusHistory)%statusHistory]
		h.T[i], h.Conns[i], h.Slow[i] = p.t, p.conns, p.slow
		h.Pubs[i], h.Deliveries[i], h.BytesOut[i] = p.rates.Pubs, p.rates.Deliveries, p.rates.BytesOut
		h.Lags[i], h.Resumes[i], h.Resets[i] = p.rates.Lags, p.rates.Resumes, p.rates.Resets
	}
	return h
}

// counterValue reads a counter or gauge of the registry.
func counterValue(c prometheus.Metric) float64 {
	var m dto.Metric
	if c == nil || c.Write(&m) != nil {
		return 0
	}
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return 0
}
