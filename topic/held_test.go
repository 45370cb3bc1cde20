package topic

import (
	"errors"
	"sync"
	"testing"
)

func pubAt(name, epoch string, seq uint64, snap bool) *Publication {
	return &Publication{Topic: name, Epoch: epoch, Seq: seq, Snap: snap, Data: []byte(`{}`)}
}

func heldEngine(t *testing.T, sink Sink) (*Engine, *[]string) {
	t.Helper()
	var mu sync.Mutex
	var idle []string
	e := NewEngine(EngineConfig{Held: true, Loops: 2, HistorySize: 4, Idle: func(n string) {
		mu.Lock()
		idle = append(idle, n)
		mu.Unlock()
	}}, sink)
	return e, &idle
}

func TestHeldSubscribeNeedsHold(t *testing.T) {
	e, _ := heldEngine(t, newRecordSink())
	if _, err := e.Subscribe("a", 0, nil); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("Subscribe of a topic not held: %v, want ErrNotHeld", err)
	}
	if _, _, _, err := e.Pull("a", Position{Epoch: "x"}, 10); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("Pull of a topic not held: %v, want ErrNotHeld", err)
	}
	if e.Topics() != 0 {
		t.Fatalf("a refused subscriber created %d topics", e.Topics())
	}
	// A topic never published: held at seq 0 with the epoch its first
	// publication will carry.
	if err := e.Hold("a", State{Epoch: "E1"}); err != nil {
		t.Fatal(err)
	}
	cu, err := e.Subscribe("a", 0, nil)
	if err != nil || cu.Pos != (Position{Epoch: "E1"}) || cu.Reset {
		t.Fatalf("Subscribe after Hold: %+v %v", cu, err)
	}
}

func TestHeldApplyInOrderOnly(t *testing.T) {
	sink := newRecordSink()
	e, _ := heldEngine(t, sink)
	if got := e.Apply(pubAt("a", "E1", 1, false)); got != NotHeld {
		t.Fatalf("Apply to a topic not held: %v", got)
	}
	if err := e.Hold("a", State{Epoch: "E1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Subscribe("a", 1, nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		p    *Publication
		want Applied
	}{
		{pubAt("a", "E1", 1, false), Placed},
		{pubAt("a", "E1", 1, false), Duplicate},
		{pubAt("a", "E1", 3, false), Gap}, // 2 missed: never passed on with a hole
		{pubAt("a", "E2", 2, false), Gap}, // another epoch
		{pubAt("a", "E1", 2, true), Placed},
	} {
		if got := e.Apply(c.p); got != c.want {
			t.Fatalf("Apply(%s %d): %v, want %v", c.p.Epoch, c.p.Seq, got, c.want)
		}
	}
	sink.expectSeqs(t, "applied", "a", nil, []uint64{1, 2})
	if pos, ok := e.Held("a"); !ok || pos != (Position{Epoch: "E1", Seq: 2}) {
		t.Fatalf("Held: %v %v", pos, ok)
	}
}

func TestHeldHoldContinuesOrReplaces(t *testing.T) {
	sink := newRecordSink()
	e, _ := heldEngine(t, sink)
	if err := e.Hold("a", State{Epoch: "E1", Seq: 2, History: []*Publication{pubAt("a", "E1", 1, false), pubAt("a", "E1", 2, false)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Subscribe("a", 0, nil); err != nil {
		t.Fatal(err)
	}
	// A repair read that continues what is held: the missed ones go out in order.
	if err := e.Hold("a", State{Epoch: "E1", Seq: 4, History: []*Publication{pubAt("a", "E1", 3, false), pubAt("a", "E1", 4, false)}}); err != nil {
		t.Fatal(err)
	}
	sink.expectSeqs(t, "repaired", "a", []uint64{3, 4})
	// A read older than what is held changes nothing.
	if err := e.Hold("a", State{Epoch: "E1", Seq: 3}); err != nil {
		t.Fatal(err)
	}
	if pos, _ := e.Held("a"); pos.Seq != 4 {
		t.Fatalf("an older read moved the topic to %d", pos.Seq)
	}
	// Another epoch (Redis lost the topic): replaced, and the loop gets
	// the newest publication, which its subscribers find does not continue.
	if err := e.Hold("a", State{Epoch: "E2", Seq: 1, History: []*Publication{pubAt("a", "E2", 1, false)}}); err != nil {
		t.Fatal(err)
	}
	got := sink.got[0]
	if last := got[len(got)-1]; last.Epoch != "E2" || last.Seq != 1 {
		t.Fatalf("after the new epoch the loop got %s %d", last.Epoch, last.Seq)
	}
	cu := e.Resume("a", Position{Epoch: "E1", Seq: 4})
	if !cu.Reset || cu.Pos != (Position{Epoch: "E2", Seq: 1}) {
		t.Fatalf("Resume from the old epoch: %+v, want reset in E2", cu)
	}
	// A history with a hole keeps only the run that ends at Seq.
	if err := e.Hold("b", State{Epoch: "E1", Seq: 9, History: []*Publication{pubAt("b", "E1", 5, false), pubAt("b", "E1", 8, false), pubAt("b", "E1", 9, false)}}); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := e.Pull("b", Position{Epoch: "E1", Seq: 7}, 10); err != nil {
		t.Fatalf("Pull of the held run: %v", err)
	}
	if _, _, _, err := e.Pull("b", Position{Epoch: "E1", Seq: 5}, 10); !errors.Is(err, ErrGone) {
		t.Fatalf("Pull across the hole: %v, want ErrGone", err)
	}
}

func TestHeldIdleAndRelease(t *testing.T) {
	e, idle := heldEngine(t, newRecordSink())
	if err := e.Hold("a", State{Epoch: "E1"}); err != nil {
		t.Fatal(err)
	}
	for _, loop := range []int{0, 1} {
		if _, err := e.Subscribe("a", loop, nil); err != nil {
			t.Fatal(err)
		}
	}
	if e.Release("a") {
		t.Fatal("Release let a topic with subscribers go")
	}
	e.Unsubscribe("a", 0)
	if len(*idle) != 0 {
		t.Fatalf("Idle called with a subscriber left: %v", *idle)
	}
	e.Unsubscribe("a", 1)
	if len(*idle) != 1 || (*idle)[0] != "a" {
		t.Fatalf("Idle after the last subscriber left: %v", *idle)
	}
	if !e.Release("a") || e.Topics() != 0 {
		t.Fatalf("Release of an idle topic: topics %d", e.Topics())
	}
	if _, err := e.Subscribe("a", 0, nil); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("Subscribe after Release: %v", err)
	}
	if got := e.Apply(pubAt("a", "E1", 1, false)); got != NotHeld {
		t.Fatalf("Apply after Release: %v", got)
	}
	// Held again later: a new topic, counted once.
	if err := e.Hold("a", State{Epoch: "E1", Seq: 3}); err != nil || e.Topics() != 1 {
		t.Fatalf("Hold after Release: %v, topics %d", err, e.Topics())
	}
}

func TestHeldMaxTopics(t *testing.T) {
	e := NewEngine(EngineConfig{Held: true, MaxTopics: 1}, newRecordSink())
	// Names nobody published to take no place, however many.
	for _, name := range []string{"u1", "u2", "u3"} {
		if err := e.Hold(name, State{Epoch: "E"}); err != nil {
			t.Fatalf("Hold of unpublished %s: %v", name, err)
		}
	}
	if e.Topics() != 0 {
		t.Fatalf("unpublished names count as %d topics", e.Topics())
	}
	if err := e.Hold("a", State{Epoch: "E", Seq: 3}); err != nil {
		t.Fatal(err)
	}
	if err := e.Hold("b", State{Epoch: "E", Seq: 1}); !errors.Is(err, ErrTooManyTopics) {
		t.Fatalf("Hold of a published topic past MaxTopics: %v", err)
	}
	if _, ok := e.Held("b"); ok {
		t.Fatal("a refused topic is held")
	}
	// A held name's first publication makes it a topic, past the limit if
	// need be: its subscribers are served.
	if _, err := e.Subscribe("u1", 0, nil); err != nil {
		t.Fatal(err)
	}
	if got := e.Apply(pubAt("u1", "E", 1, false)); got != Placed || e.Topics() != 2 {
		t.Fatalf("first publication of a held name: %v, topics %d", got, e.Topics())
	}
	e.Unsubscribe("u1", 0)
	for _, name := range []string{"u1", "u2", "u3", "a"} {
		e.Release(name)
	}
	if e.Topics() != 0 {
		t.Fatalf("after every Release: %d topics", e.Topics())
	}
}
