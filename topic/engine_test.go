package topic

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

// current returns the named topic's position: seq 0 and the epoch its
// first publication will carry for a topic never published to.
func current(e *Engine, name string) Position {
	if t, ok := e.lookup(name); ok {
		t.mu.Lock()
		defer t.mu.Unlock()
		return Position{Epoch: t.epoch, Seq: t.seq}
	}
	return Position{Epoch: e.epoch}
}

// waiting returns how many names never published to have subscribers.
func waiting(e *Engine) int {
	n := 0
	for i := range e.wait {
		p := &e.wait[i]
		p.mu.Lock()
		n += len(p.m)
		p.mu.Unlock()
	}
	return n
}

// recordSink keeps, per loop, every publication the engine hands it.
type recordSink struct {
	mu   sync.Mutex
	got  map[int][]*Publication
	bad  []string // Enqueue calls that broke the per-topic seq order
	last map[string]map[int]uint64
}

func newRecordSink() *recordSink {
	return &recordSink{got: map[int][]*Publication{}, last: map[string]map[int]uint64{}}
}

func (s *recordSink) Enqueue(loop int, p *Publication) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got[loop] = append(s.got[loop], p)
	m := s.last[p.Topic]
	if m == nil {
		m = map[int]uint64{}
		s.last[p.Topic] = m
	}
	if prev, ok := m[loop]; ok && p.Seq != prev+1 {
		s.bad = append(s.bad, fmt.Sprintf("loop %d topic %s: seq %d after %d", loop, p.Topic, p.Seq, prev))
	}
	m[loop] = p.Seq
}

// seqs returns the seqs loop received of topic name.
func (s *recordSink) seqs(loop int, name string) []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []uint64
	for _, p := range s.got[loop] {
		if p.Topic == name {
			out = append(out, p.Seq)
		}
	}
	return out
}

// expectSeqs fails unless each loop received exactly the seqs of topic
// name given for it: perLoop[i] for loop i.
func (s *recordSink) expectSeqs(t *testing.T, step, name string, perLoop ...[]uint64) {
	t.Helper()
	for loop, want := range perLoop {
		if got := s.seqs(loop, name); !slices.Equal(got, want) {
			t.Fatalf("%s: loop %d got seqs %v, want %v", step, loop, got, want)
		}
	}
}

func (s *recordSink) count(loop int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got[loop])
}

func (s *recordSink) checkOrder(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.bad {
		t.Error(b)
	}
}

func span(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func mustPublish(t testing.TB, e *Engine, name string, snap bool) Position {
	t.Helper()
	pos, err := e.Publish(name, []byte(`{}`), false, snap)
	if err != nil {
		t.Fatalf("Publish(%q): %v", name, err)
	}
	return pos
}

// publishScript publishes one publication per byte of script: 'u' an
// update, 'S' a snapshot.
func publishScript(t testing.TB, e *Engine, name, script string) {
	t.Helper()
	for i, c := range script {
		data := []byte(fmt.Sprintf(`{"i":%d}`, i+1))
		if _, err := e.Publish(name, data, false, c == 'S'); err != nil {
			t.Fatalf("Publish(%q): %v", name, err)
		}
	}
}

func TestEngineSeqStartsAtOneWithoutGaps(t *testing.T) {
	e := NewEngine(EngineConfig{}, newRecordSink())
	var want = map[string]uint64{}
	for i := 0; i < 30; i++ {
		name := []string{"a", "b.c", "d"}[i%3]
		if i%5 == 0 {
			name = "a"
		}
		want[name]++
		pos := mustPublish(t, e, name, i%4 == 0)
		if pos.Seq != want[name] {
			t.Fatalf("publication %d to %q got seq %d, want %d", i, name, pos.Seq, want[name])
		}
		if cur := current(e, name); cur != pos {
			t.Fatalf("current(%q) = %+v after publishing at %+v", name, cur, pos)
		}
	}
	if e.Topics() != 3 {
		t.Fatalf("Topics() = %d, want 3", e.Topics())
	}
}

func TestEngineEpoch(t *testing.T) {
	e := NewEngine(EngineConfig{}, nil)
	before := current(e, "never")
	if before.Epoch == "" || before.Seq != 0 {
		t.Fatalf("Current of a topic never published to = %+v, want a non-empty epoch and seq 0", before)
	}
	if e.Topics() != 0 {
		t.Fatalf("Current created a topic: Topics() = %d", e.Topics())
	}
	if _, ok := e.lookup("never"); ok {
		t.Fatal("Current created the topic")
	}
	first := mustPublish(t, e, "never", false)
	if first.Epoch != before.Epoch || first.Seq != 1 {
		t.Fatalf("first publication at %+v, want epoch %q seq 1 as Current promised", first, before.Epoch)
	}
	for i := 0; i < 100; i++ {
		if pos := mustPublish(t, e, "never", i%7 == 0); pos.Epoch != first.Epoch {
			t.Fatalf("epoch changed from %q to %q at seq %d", first.Epoch, pos.Epoch, pos.Seq)
		}
	}
	// A restarted node never reuses an epoch.
	seen := map[string]bool{first.Epoch: true}
	for i := 0; i < 100; i++ {
		ep := current(NewEngine(EngineConfig{}, nil), "x").Epoch
		if seen[ep] {
			t.Fatalf("epoch %q repeated by a new engine", ep)
		}
		seen[ep] = true
	}
}

func TestEnginePublishBadName(t *testing.T) {
	sink := newRecordSink()
	e := NewEngine(EngineConfig{}, sink)
	for _, name := range []string{"", "a b", "ticker.*", strings.Repeat("x", 201), "é"} {
		if _, err := e.Publish(name, nil, false, false); !errors.Is(err, ErrBadName) {
			t.Errorf("Publish(%q) = %v, want ErrBadName", name, err)
		}
		if _, err := e.Subscribe(name, 0, nil); !errors.Is(err, ErrBadName) {
			t.Errorf("Subscribe(%q) = %v, want ErrBadName", name, err)
		}
		if _, _, _, err := e.Pull(name, Position{}, 0); !errors.Is(err, ErrBadName) {
			t.Errorf("Pull(%q) = %v, want ErrBadName", name, err)
		}
	}
	if e.Topics() != 0 {
		t.Fatalf("bad names created %d topics", e.Topics())
	}
}

func TestEnginePublicationFields(t *testing.T) {
	sink := newRecordSink()
	e := NewEngine(EngineConfig{}, sink)
	if _, err := e.Subscribe("f", 0, nil); err != nil {
		t.Fatal(err)
	}
	data := []byte{0x81, 0xa1, 'a', 0x01}
	pos, err := e.Publish("f", data, true, true)
	if err != nil {
		t.Fatal(err)
	}
	got := sink.got[0]
	if len(got) != 1 {
		t.Fatalf("sink got %d publications, want 1", len(got))
	}
	p := got[0]
	if p.Topic != "f" || p.Epoch != pos.Epoch || p.Seq != 1 || !p.Snap || !p.DataMsgpack || &p.Data[0] != &data[0] {
		t.Fatalf("publication %+v, want topic f, epoch %q, seq 1, snap, msgpack, the caller's data", p, pos.Epoch)
	}
	// History shares the same value the sink got.
	_, pubs, _, err := e.Pull("f", Position{Epoch: pos.Epoch}, 0)
	if err != nil || len(pubs) != 1 || pubs[0] != p {
		t.Fatalf("Pull = %v, %v; want the publication the sink got", pubs, err)
	}
}

func TestEngineConcurrentPublishSameTopic(t *testing.T) {
	const workers, each = 16, 300
	sink := newRecordSink()
	e := NewEngine(EngineConfig{HistorySize: workers * each}, sink)
	if _, err := e.Subscribe("hot", 0, nil); err != nil {
		t.Fatal(err)
	}
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		all []uint64
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := make([]uint64, 0, each)
			for i := 0; i < each; i++ {
				pos, err := e.Publish("hot", []byte("1"), false, false)
				if err != nil {
					t.Error(err)
					return
				}
				mine = append(mine, pos.Seq)
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.Sort(all)
	if !slices.Equal(all, span(1, workers*each)) {
		t.Fatalf("seqs are not exactly 1..%d (got %d, first %v)", workers*each, len(all), all[:min(10, len(all))])
	}
	if got := sink.seqs(0, "hot"); !slices.Equal(got, span(1, workers*each)) {
		t.Fatalf("sink got %d publications, not 1..%d in order", len(got), workers*each)
	}
	sink.checkOrder(t)
	if cur := current(e, "hot"); cur.Seq != workers*each {
		t.Fatalf("Current = %+v, want seq %d", cur, workers*each)
	}
}

func TestEngineConcurrentPublishManyTopics(t *testing.T) {
	const workers, topics, each = 8, 32, 50
	sink := newRecordSink()
	e := NewEngine(EngineConfig{Loops: 2}, sink)
	for i := 0; i < topics; i++ {
		if _, err := e.Subscribe(fmt.Sprintf("t.%d", i), i%2, nil); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < topics*each; i++ {
				if _, err := e.Publish(fmt.Sprintf("t.%d", (i+w)%topics), nil, false, false); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	sink.checkOrder(t)
	for i := 0; i < topics; i++ {
		name := fmt.Sprintf("t.%d", i)
		if got := sink.seqs(i%2, name); !slices.Equal(got, span(1, workers*each)) {
			t.Errorf("loop %d got %d publications of %s, want 1..%d in order", i%2, len(got), name, workers*each)
		}
		if got := sink.seqs(1-i%2, name); len(got) != 0 {
			t.Errorf("loop %d without subscribers got %d publications of %s", 1-i%2, len(got), name)
		}
	}
}

func TestEngineSinkPerLoop(t *testing.T) {
	sink := newRecordSink()
	e := NewEngine(EngineConfig{Loops: 3}, sink)
	mustPublish(t, e, "s", false) // seq 1: no subscribers yet
	if n := sink.count(0) + sink.count(1) + sink.count(2); n != 0 {
		t.Fatalf("sink got %d publications with no subscribers", n)
	}
	for _, loop := range []int{0, 0, 2} { // two on loop 0, one on loop 2
		if _, err := e.Subscribe("s", loop, nil); err != nil {
			t.Fatal(err)
		}
	}
	mustPublish(t, e, "s", false) // 2
	mustPublish(t, e, "s", true)  // 3
	mustPublish(t, e, "other", false)
	// Once per loop, however many subscribers it has.
	sink.expectSeqs(t, "subscribed", "s", span(2, 3), nil, span(2, 3))
	if got := sink.seqs(0, "other"); len(got) != 0 {
		t.Fatalf("loop 0 got %v of a topic it does not subscribe", got)
	}

	e.Unsubscribe("s", 2)
	mustPublish(t, e, "s", false) // 4
	sink.expectSeqs(t, "loop 2 unsubscribed", "s", span(2, 4), nil, span(2, 3))

	e.Unsubscribe("s", 0)         // one subscriber left on loop 0
	mustPublish(t, e, "s", false) // 5
	sink.expectSeqs(t, "loop 0 down to one", "s", span(2, 5), nil, span(2, 3))

	e.Unsubscribe("s", 0)
	mustPublish(t, e, "s", false) // 6
	sink.expectSeqs(t, "loop 0 down to zero", "s", span(2, 5), nil, span(2, 3))

	// More unsubscribes than subscribes do not go below zero: one new
	// subscriber is enough to get publications again.
	e.Unsubscribe("s", 0)
	e.Unsubscribe("s", 0)
	e.Unsubscribe("s", -1)
	e.Unsubscribe("s", 3)
	e.Unsubscribe("never", 0)
	if _, ok := e.lookup("never"); ok {
		t.Fatal("Unsubscribe created a topic")
	}
	if _, err := e.Subscribe("s", 0, nil); err != nil {
		t.Fatal(err)
	}
	mustPublish(t, e, "s", false) // 7
	// Loop 0 missed 6 while it had no subscriber: its seqs are 2..5, 7 by design.
	sink.expectSeqs(t, "loop 0 subscribed again", "s", append(span(2, 5), 7), nil, span(2, 3))
}

func TestEngineSubscribeLoopOutOfRange(t *testing.T) {
	tests := []struct {
		loops int
		bad   []int
		good  []int
	}{
		{0, []int{-1, 1, 2}, []int{0}},
		{1, []int{-1, 1}, []int{0}},
		{4, []int{-1, 4, 100}, []int{0, 1, 2, 3}},
	}
	for _, tt := range tests {
		e := NewEngine(EngineConfig{Loops: tt.loops}, newRecordSink())
		for _, loop := range tt.bad {
			if _, err := e.Subscribe("x", loop, nil); err == nil {
				t.Errorf("Loops %d: Subscribe on loop %d succeeded", tt.loops, loop)
			}
		}
		for _, loop := range tt.good {
			if _, err := e.Subscribe("x", loop, nil); err != nil {
				t.Errorf("Loops %d: Subscribe on loop %d: %v", tt.loops, loop, err)
			}
		}
	}
}

func TestEngineConflated(t *testing.T) {
	ps, err := ParsePatterns("ticker.*")
	if err != nil {
		t.Fatal(err)
	}
	e := NewEngine(EngineConfig{Conflate: ps}, nil)
	for name, want := range map[string]bool{"ticker.BTC": true, "ticker": false, "ticker.a.b": false, "book.BTC": false} {
		if got := e.Conflated(name); got != want {
			t.Errorf("Engine.Conflated(%q) = %v, want %v", name, got, want)
		}
		mustPublish(t, e, name, false)
		tp, ok := e.lookup(name)
		if !ok {
			t.Fatalf("lookup(%q) after Publish: not found", name)
		}
		if tp.name != name || tp.conflate != want {
			t.Errorf("topic %q: name %q, conflate %v, want %v", name, tp.name, tp.conflate, want)
		}
	}
	if NewEngine(EngineConfig{}, nil).Conflated("ticker.BTC") {
		t.Error("an engine without Conflate patterns conflates ticker.BTC")
	}
}

func TestEngineMaxTopics(t *testing.T) {
	e := NewEngine(EngineConfig{MaxTopics: 3}, newRecordSink())
	for _, name := range []string{"a", "b", "c"} {
		mustPublish(t, e, name, false)
	}
	if _, err := e.Publish("d", nil, false, false); !errors.Is(err, ErrTooManyTopics) {
		t.Fatalf("Publish of a 4th topic = %v, want ErrTooManyTopics", err)
	}
	// A subscriber waits for the topic's first publication: it takes no
	// place and is never refused for the limit.
	if _, err := e.Subscribe("d", 0, nil); err != nil {
		t.Fatalf("Subscribe of a 4th topic at the limit = %v, want nil", err)
	}
	if e.Topics() != 3 {
		t.Fatalf("Topics() = %d, want 3", e.Topics())
	}
	if _, ok := e.lookup("d"); ok {
		t.Fatal("the refused topic exists")
	}
	// The existing topics go on.
	if pos := mustPublish(t, e, "a", false); pos.Seq != 2 {
		t.Fatalf("publish to an existing topic at the limit: seq %d, want 2", pos.Seq)
	}
	if _, err := e.Subscribe("b", 0, nil); err != nil {
		t.Fatalf("Subscribe of an existing topic at the limit: %v", err)
	}
	// Pull and Current of a topic never created still answer.
	if cur := current(e, "d"); cur.Seq != 0 || cur.Epoch == "" {
		t.Fatalf("current(d) = %+v", cur)
	}
}

// MaxTopics holds when many goroutines create topics at once.
func TestEngineMaxTopicsConcurrent(t *testing.T) {
	const limit, workers = 4, 16
	for round := 0; round < 1000; round++ {
		e := NewEngine(EngineConfig{MaxTopics: limit}, nil)
		var (
			wg    sync.WaitGroup
			start = make(chan struct{})
		)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, err := e.Publish(fmt.Sprintf("t%d", w), nil, false, false)
				if err != nil && !errors.Is(err, ErrTooManyTopics) {
					t.Error(err)
				}
			}()
		}
		close(start)
		wg.Wait()
		n := 0
		for w := 0; w < workers; w++ {
			if _, ok := e.lookup(fmt.Sprintf("t%d", w)); ok {
				n++
			}
		}
		if n > limit || e.Topics() > limit {
			t.Fatalf("round %d: %d topics exist (Topics() = %d) with MaxTopics %d", round, n, e.Topics(), limit)
		}
	}
}

// TestEngineSubscribeWhilePublishing checks that the backlog and the live
// publications of a new subscriber meet with no gap and no repeat.
func TestEngineSubscribeWhilePublishing(t *testing.T) {
	const total = 5000
	sink := newRecordSink()
	e := NewEngine(EngineConfig{Loops: 2, HistorySize: total}, sink)
	if _, err := e.Subscribe("live", 0, nil); err != nil {
		t.Fatal(err)
	}
	mustPublish(t, e, "live", true) // a snapshot at 1, so the backlog is 1..Pos.Seq
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i < total; i++ {
			if _, err := e.Publish("live", nil, false, false); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for current(e, "live").Seq < total/4 {
		select {
		case <-done:
			t.Fatal("the publisher stopped early")
		default:
		}
	}
	c, err := e.Subscribe("live", 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Unsubscribe loop 0 while the publisher runs: nothing after that point.
	e.Unsubscribe("live", 0)
	stop := current(e, "live").Seq
	<-done
	got := append(seqs(c.Backlog), sink.seqs(1, "live")...)
	if !slices.Equal(got, span(1, total)) {
		t.Fatalf("backlog (%d, up to %d) and live (%d) are not 1..%d", len(c.Backlog), c.Pos.Seq, len(got)-len(c.Backlog), total)
	}
	if n := len(c.Backlog); n == 0 || c.Backlog[n-1].Seq != c.Pos.Seq {
		t.Fatalf("backlog does not end at Pos.Seq %d", c.Pos.Seq)
	}
	got0 := sink.seqs(0, "live")
	if len(got0) == 0 || got0[len(got0)-1] > stop || !slices.Equal(got0, span(1, got0[len(got0)-1])) {
		t.Fatalf("loop 0 got %d publications up to %d; want 1..n with n <= %d (Current after Unsubscribe)", len(got0), got0[len(got0)-1], stop)
	}
	sink.checkOrder(t)
}

// since positions in the recovery table: the engine's epoch is not known
// beforehand, so "cur" stands for it.
type sinceSpec struct {
	epoch string // "cur" is the current epoch
	seq   uint64
}

func TestEngineRecovery(t *testing.T) {
	tests := []struct {
		name     string
		history  int
		script   string // 'u' update, 'S' snapshot; "" a topic never published to
		since    *sinceSpec
		rec      bool
		reset    bool
		resetSeq uint64 // checked when reset
		backlog  []uint64
		snapAt0  bool // the backlog starts with a snapshot
	}{
		// Rule 1: sub without since.
		{name: "no since, snapshot", script: "uuSuu", backlog: span(3, 5), snapAt0: true},
		{name: "no since, snapshot is the latest", script: "uuuuS", backlog: []uint64{5}, snapAt0: true},
		{name: "no since, latest of several snapshots", script: "SuuSu", backlog: span(4, 5), snapAt0: true},
		{name: "no since, no snapshot", script: "uuuuu"},
		{name: "no since, never published", script: ""},
		{name: "no since, snapshot left the ring but its updates are held", history: 2, script: "Suu", backlog: span(1, 3), snapAt0: true},
		{name: "no since, updates after the snapshot evicted", history: 2, script: "Suuuu"},
		{name: "no since, history off, snapshot last", history: -1, script: "uuS", backlog: []uint64{3}, snapAt0: true},
		{name: "no since, history off, updates after snapshot", history: -1, script: "uSu"},

		// Rule 2: since in the current epoch and held.
		{name: "since held", script: "uuuuu", since: &sinceSpec{"cur", 2}, rec: true, backlog: span(3, 5)},
		{name: "since held with snapshot", script: "uSuuu", since: &sinceSpec{"cur", 3}, rec: true, backlog: span(4, 5)},
		{name: "since before the snapshot sends updates, not the snapshot", script: "uuSuu", since: &sinceSpec{"cur", 1}, rec: true, backlog: span(2, 5)},
		{name: "since 0, all held", script: "uuu", since: &sinceSpec{"cur", 0}, rec: true, backlog: span(1, 3)},
		{name: "since current", script: "uuSuu", since: &sinceSpec{"cur", 5}, rec: true},
		{name: "since current, history off", history: -1, script: "uuu", since: &sinceSpec{"cur", 3}, rec: true},
		{name: "since 0, never published", script: "", since: &sinceSpec{"cur", 0}, rec: true},
		{name: "since is the seq before the oldest held", history: 3, script: "uuuuuu", since: &sinceSpec{"cur", 3}, rec: true, backlog: span(4, 6)},

		// Rule 3: otherwise reset, then as rule 1.
		{name: "wrong epoch, snapshot", script: "uuSuu", since: &sinceSpec{"old", 2}, reset: true, resetSeq: 3, backlog: span(3, 5), snapAt0: true},
		{name: "wrong epoch, no snapshot", script: "uuu", since: &sinceSpec{"old", 2}, reset: true, resetSeq: 3},
		{name: "empty epoch", script: "uuu", since: &sinceSpec{"", 3}, reset: true, resetSeq: 3},
		{name: "wrong epoch, never published", script: "", since: &sinceSpec{"old", 0}, reset: true, resetSeq: 0},
		{name: "evicted", history: 3, script: "uuuuuu", since: &sinceSpec{"cur", 2}, reset: true, resetSeq: 6},
		{name: "evicted since 0", history: 3, script: "uuuuuu", since: &sinceSpec{"cur", 0}, reset: true, resetSeq: 6},
		{name: "evicted, snapshot held", history: 3, script: "uuuSuu", since: &sinceSpec{"cur", 1}, reset: true, resetSeq: 4, backlog: span(4, 6), snapAt0: true},
		{name: "evicted, snapshot's updates evicted", history: 2, script: "uSuuuu", since: &sinceSpec{"cur", 1}, reset: true, resetSeq: 6},
		{name: "history off, behind", history: -1, script: "uuu", since: &sinceSpec{"cur", 2}, reset: true, resetSeq: 3},
		{name: "history off, behind, snapshot last", history: -1, script: "uuS", since: &sinceSpec{"cur", 1}, reset: true, resetSeq: 3, backlog: []uint64{3}, snapAt0: true},
		{name: "future", script: "uuu", since: &sinceSpec{"cur", 4}, reset: true, resetSeq: 3},
		{name: "future, snapshot", script: "Suu", since: &sinceSpec{"cur", 99}, reset: true, resetSeq: 1, backlog: span(1, 3), snapAt0: true},
		{name: "future, never published", script: "", since: &sinceSpec{"cur", 1}, reset: true, resetSeq: 0},
		{name: "wrong epoch, snapshot's updates evicted", history: 2, script: "Suuuu", since: &sinceSpec{"old", 4}, reset: true, resetSeq: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check := func(how string, e *Engine, c Catchup) {
				t.Helper()
				cur := current(e, "r")
				if c.Pos != cur {
					t.Errorf("%s: Pos = %+v, want Current %+v", how, c.Pos, cur)
				}
				if c.Pos.Seq != uint64(len(tt.script)) {
					t.Errorf("%s: Pos.Seq = %d, want %d", how, c.Pos.Seq, len(tt.script))
				}
				if c.Recovered != tt.rec || c.Reset != tt.reset {
					t.Errorf("%s: Recovered %v Reset %v, want %v %v", how, c.Recovered, c.Reset, tt.rec, tt.reset)
				}
				if tt.reset && c.ResetSeq != tt.resetSeq {
					t.Errorf("%s: ResetSeq = %d, want %d", how, c.ResetSeq, tt.resetSeq)
				}
				if got := seqs(c.Backlog); !slices.Equal(got, tt.backlog) {
					t.Errorf("%s: backlog seqs %v, want %v", how, got, tt.backlog)
				}
				for i, p := range c.Backlog {
					if p.Topic != "r" || p.Epoch != cur.Epoch {
						t.Errorf("%s: backlog[%d] = %+v, want topic r in epoch %q", how, i, p, cur.Epoch)
					}
					wantSnap := tt.script[p.Seq-1] == 'S'
					if i == 0 && tt.snapAt0 && !p.Snap {
						t.Errorf("%s: backlog starts with seq %d, not a snapshot", how, p.Seq)
					}
					if p.Snap != wantSnap {
						t.Errorf("%s: backlog[%d] Snap = %v, want %v", how, i, p.Snap, wantSnap)
					}
				}
				if n := len(c.Backlog); n > 0 && c.Backlog[n-1].Seq != c.Pos.Seq {
					t.Errorf("%s: backlog ends at %d, not at Pos.Seq %d", how, c.Backlog[n-1].Seq, c.Pos.Seq)
				}
			}
			setup := func() (*Engine, *recordSink, *Position) {
				sink := newRecordSink()
				e := NewEngine(EngineConfig{HistorySize: tt.history, Loops: 2}, sink)
				publishScript(t, e, "r", tt.script)
				if tt.since == nil {
					return e, sink, nil
				}
				since := &Position{Epoch: tt.since.epoch, Seq: tt.since.seq}
				switch since.Epoch {
				case "cur":
					since.Epoch = current(e, "r").Epoch
				case "old":
					since.Epoch = current(NewEngine(EngineConfig{}, nil), "r").Epoch
				}
				return e, sink, since
			}

			e, sink, since := setup()
			c, err := e.Subscribe("r", 1, since)
			if err != nil {
				t.Fatal(err)
			}
			check("Subscribe", e, c)
			// The subscriber now gets live publications on its loop.
			mustPublish(t, e, "r", false)
			if got := sink.seqs(1, "r"); !slices.Equal(got, []uint64{uint64(len(tt.script)) + 1}) {
				t.Errorf("after Subscribe loop 1 got %v, want the next seq only", got)
			}

			if since == nil {
				return
			}
			// Resume gives the same answer and subscribes no one.
			e, sink, since = setup()
			check("Resume", e, e.Resume("r", *since))
			mustPublish(t, e, "r", false)
			if n := sink.count(0) + sink.count(1); n != 0 {
				t.Errorf("Resume subscribed: the sink got %d publications", n)
			}
		})
	}
}

// Resume on a topic with subscribers leaves their count as it is.
func TestEngineResumeKeepsCounts(t *testing.T) {
	sink := newRecordSink()
	e := NewEngine(EngineConfig{}, sink)
	if _, err := e.Subscribe("k", 0, nil); err != nil {
		t.Fatal(err)
	}
	publishScript(t, e, "k", "uuu")
	cur := current(e, "k")
	for i := 0; i < 3; i++ {
		c := e.Resume("k", Position{Epoch: cur.Epoch, Seq: 1})
		if !c.Recovered || c.Reset || !slices.Equal(seqs(c.Backlog), span(2, 3)) {
			t.Fatalf("Resume = %+v", c)
		}
	}
	e.Unsubscribe("k", 0) // the only subscriber
	mustPublish(t, e, "k", false)
	if got := sink.seqs(0, "k"); !slices.Equal(got, span(1, 3)) {
		t.Fatalf("after the only Unsubscribe loop 0 got %v, want 1..3", got)
	}
}

func TestEnginePull(t *testing.T) {
	sink := newRecordSink()
	e := NewEngine(EngineConfig{}, sink)
	publishScript(t, e, "p", "uuSuuuuuuu") // 1..10
	ep := current(e, "p").Epoch
	tests := []struct {
		since uint64
		limit int
		want  []uint64
		more  bool
	}{
		{0, 0, span(1, 10), false},
		{0, -1, span(1, 10), false},
		{0, 10, span(1, 10), false},
		{0, 11, span(1, 10), false},
		{0, 9, span(1, 9), true},
		{0, 3, span(1, 3), true},
		{3, 3, span(4, 6), true},
		{6, 3, span(7, 9), true},
		{7, 3, span(8, 10), false},
		{9, 3, []uint64{10}, false},
		{9, 1, []uint64{10}, false},
		{8, 1, []uint64{9}, true},
		{10, 0, nil, false},
		{10, 5, nil, false},
	}
	for _, tt := range tests {
		gotEp, pubs, more, err := e.Pull("p", Position{Epoch: ep, Seq: tt.since}, tt.limit)
		if err != nil {
			t.Errorf("Pull since %d limit %d: %v", tt.since, tt.limit, err)
			continue
		}
		if gotEp != ep || !slices.Equal(seqs(pubs), tt.want) || more != tt.more {
			t.Errorf("Pull since %d limit %d = %q %v more %v, want %q %v more %v",
				tt.since, tt.limit, gotEp, seqs(pubs), more, ep, tt.want, tt.more)
		}
		for _, p := range pubs {
			if p.Snap != (p.Seq == 3) || p.Topic != "p" || p.Epoch != ep {
				t.Errorf("pulled %+v", p)
			}
		}
	}
	// Paging with more reaches the end with nothing lost.
	var all []uint64
	pos := Position{Epoch: ep}
	for {
		_, pubs, more, err := e.Pull("p", pos, 4)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, seqs(pubs)...)
		if !more {
			break
		}
		pos.Seq = pubs[len(pubs)-1].Seq
	}
	if !slices.Equal(all, span(1, 10)) {
		t.Fatalf("paged pull got %v", all)
	}
	if sink.count(0) != 0 {
		t.Fatal("Pull subscribed")
	}
}

func TestEnginePullDefaultLimit(t *testing.T) {
	e := NewEngine(EngineConfig{HistorySize: 2500}, nil)
	for i := 0; i < 2500; i++ {
		mustPublish(t, e, "big", false)
	}
	ep := current(e, "big").Epoch
	for _, limit := range []int{0, -1} {
		_, pubs, more, err := e.Pull("big", Position{Epoch: ep}, limit)
		if err != nil || len(pubs) != 1000 || !more || pubs[0].Seq != 1 || pubs[999].Seq != 1000 {
			t.Fatalf("Pull limit %d: %d pubs, more %v, %v; want 1..1000 and more", limit, len(pubs), more, err)
		}
	}
	_, pubs, more, err := e.Pull("big", Position{Epoch: ep, Seq: 1500}, 0)
	if err != nil || len(pubs) != 1000 || more {
		t.Fatalf("Pull since 1500: %d pubs, more %v, %v; want 1001..2500 and no more", len(pubs), more, err)
	}
	_, pubs, more, err = e.Pull("big", Position{Epoch: ep, Seq: 1499}, 0)
	if err != nil || len(pubs) != 1000 || !more || pubs[999].Seq != 2499 {
		t.Fatalf("Pull since 1499: %d pubs, more %v, %v; want 1500..2499 and more", len(pubs), more, err)
	}
	_, pubs, more, err = e.Pull("big", Position{Epoch: ep, Seq: 2000}, 5000)
	if err != nil || len(pubs) != 500 || more {
		t.Fatalf("Pull since 2000 limit 5000: %d pubs, more %v, %v", len(pubs), more, err)
	}
}

func TestEnginePullErrors(t *testing.T) {
	e := NewEngine(EngineConfig{HistorySize: 5}, nil)
	publishScript(t, e, "p", "Suuuuuuuuu") // 1..10, holds 6..10
	ep := current(e, "p").Epoch
	old := current(NewEngine(EngineConfig{}, nil), "p").Epoch
	tests := []struct {
		name string
		from Position
		want error
	}{
		{"wrong epoch", Position{Epoch: old, Seq: 8}, ErrGone},
		{"empty epoch", Position{Seq: 8}, ErrGone},
		{"wrong epoch at 0", Position{Epoch: old}, ErrGone},
		{"evicted", Position{Epoch: ep, Seq: 4}, ErrGone},
		{"evicted from 0", Position{Epoch: ep, Seq: 0}, ErrGone},
		{"just past the oldest", Position{Epoch: ep, Seq: 5}, nil},
		{"current", Position{Epoch: ep, Seq: 10}, nil},
		{"future", Position{Epoch: ep, Seq: 11}, errFuture},
		{"far future", Position{Epoch: ep, Seq: 1<<64 - 1}, errFuture},
	}
	for _, tt := range tests {
		_, pubs, more, err := e.Pull("p", tt.from, 0)
		if !errors.Is(err, tt.want) || tt.want == nil && err != nil {
			t.Errorf("%s: Pull from %+v = %v, want %v", tt.name, tt.from, err, tt.want)
		}
		if err != nil && (pubs != nil || more) {
			t.Errorf("%s: Pull failed but returned %d pubs, more %v", tt.name, len(pubs), more)
		}
	}
	_, pubs, _, err := e.Pull("p", Position{Epoch: ep, Seq: 5}, 0)
	if err != nil || !slices.Equal(seqs(pubs), span(6, 10)) {
		t.Fatalf("Pull from the oldest held = %v, %v; want 6..10", seqs(pubs), err)
	}

	// A history that keeps nothing: only the current position can be pulled.
	off := NewEngine(EngineConfig{HistorySize: -1}, nil)
	publishScript(t, off, "p", "uuu")
	oep := current(off, "p").Epoch
	if _, pubs, more, err := off.Pull("p", Position{Epoch: oep, Seq: 3}, 0); err != nil || len(pubs) != 0 || more {
		t.Errorf("history off, pull from current: %v %v %v", pubs, more, err)
	}
	if _, _, _, err := off.Pull("p", Position{Epoch: oep, Seq: 2}, 0); !errors.Is(err, ErrGone) {
		t.Errorf("history off, pull from 2 = %v, want ErrGone", err)
	}
}

func TestEnginePullNeverPublished(t *testing.T) {
	e := NewEngine(EngineConfig{}, nil)
	cur := current(e, "quiet")
	ep, pubs, more, err := e.Pull("quiet", cur, 0)
	if err != nil || ep != cur.Epoch || len(pubs) != 0 || more {
		t.Fatalf("Pull of a topic never published to = %q %v %v %v; want %q, empty, not more", ep, pubs, more, err, cur.Epoch)
	}
	if _, _, _, err := e.Pull("quiet", Position{Epoch: cur.Epoch, Seq: 1}, 0); !errors.Is(err, errFuture) {
		t.Fatalf("Pull from seq 1 of a topic never published to = %v, want errFuture", err)
	}
	if _, _, _, err := e.Pull("quiet", Position{Epoch: "other"}, 0); !errors.Is(err, ErrGone) {
		t.Fatalf("Pull in another epoch of a topic never published to = %v, want ErrGone", err)
	}
	if e.Topics() != 0 {
		t.Fatalf("Pull created %d topics", e.Topics())
	}
	// The same while a subscriber waits for the topic's first publication,
	// which creates nothing either.
	if _, err := e.Subscribe("quiet", 0, nil); err != nil {
		t.Fatal(err)
	}
	if e.Topics() != 0 {
		t.Fatalf("Subscribe created %d topics", e.Topics())
	}
	ep, pubs, more, err = e.Pull("quiet", cur, 0)
	if err != nil || ep != cur.Epoch || len(pubs) != 0 || more {
		t.Fatalf("Pull of a topic with a waiting subscriber = %q %v %v %v", ep, pubs, more, err)
	}
	if _, _, _, err := e.Pull("quiet", Position{Epoch: cur.Epoch, Seq: 1}, 0); !errors.Is(err, errFuture) {
		t.Fatalf("Pull from seq 1 of a topic with a waiting subscriber = %v, want errFuture", err)
	}
}
