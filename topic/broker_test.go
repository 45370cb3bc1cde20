package topic

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

var _ Broker = (*MemoryBroker)(nil)

func TestMemoryBrokerPublishBatch(t *testing.T) {
	sink := newRecordSink()
	e := NewEngine(EngineConfig{}, sink)
	for _, name := range []string{"a", "b", "c"} {
		if _, err := e.Subscribe(name, 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	mustPublish(t, e, "b", false) // b starts at 2 in the batch
	b := NewMemoryBroker(e)
	reqs := []PublishRequest{
		{Topic: "a", Data: []byte(`1`)},
		{Topic: "b", Data: []byte(`2`)},
		{Topic: "a", Data: []byte(`3`), Snap: true},
		{Topic: "c", Data: []byte{0x04}, DataMsgpack: true},
		{Topic: "a", Data: []byte(`5`)},
	}
	pos, err := b.Publish(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	ep := current(e, "a").Epoch
	want := []Position{{ep, 1}, {ep, 2}, {ep, 2}, {ep, 1}, {ep, 3}}
	if !slices.Equal(pos, want) {
		t.Fatalf("positions %+v, want %+v", pos, want)
	}
	// The sink saw them in batch order, with the request's fields.
	s := sink.got[0]
	if len(s) != 6 {
		t.Fatalf("sink got %d publications, want 6", len(s))
	}
	for i, r := range reqs {
		p := s[i+1]
		if p.Topic != r.Topic || string(p.Data) != string(r.Data) || p.Snap != r.Snap || p.DataMsgpack != r.DataMsgpack ||
			(Position{p.Epoch, p.Seq}) != pos[i] {
			t.Errorf("publication %d = %+v, want %+v at %+v", i, p, r, pos[i])
		}
	}
	if current(e, "a").Seq != 3 || current(e, "b").Seq != 2 || current(e, "c").Seq != 1 {
		t.Fatalf("Current after the batch: a %+v b %+v c %+v", current(e, "a"), current(e, "b"), current(e, "c"))
	}
}

func TestMemoryBrokerEmptyBatch(t *testing.T) {
	b := NewMemoryBroker(NewEngine(EngineConfig{}, nil))
	pos, err := b.Publish(context.Background(), nil)
	if err != nil || len(pos) != 0 {
		t.Fatalf("empty batch = %v, %v", pos, err)
	}
}

func TestMemoryBrokerBadBatchPublishesNothing(t *testing.T) {
	tests := []struct {
		name string
		bad  string
		at   int
		want error
	}{
		{"bad name first", "a b", 0, ErrBadName},
		{"bad name in the middle", "ticker.*", 2, ErrBadName},
		{"bad name last", "", 4, ErrBadName},
		{"too long", strings.Repeat("x", MaxNameLen+1), 3, ErrBadName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := newRecordSink()
			e := NewEngine(EngineConfig{}, sink)
			for _, name := range []string{"a", "b"} {
				if _, err := e.Subscribe(name, 0, nil); err != nil {
					t.Fatal(err)
				}
				mustPublish(t, e, name, false)
			}
			beforeA, beforeB := current(e, "a"), current(e, "b")
			sent := sink.count(0)
			reqs := []PublishRequest{{Topic: "a"}, {Topic: "b"}, {Topic: "a", Snap: true}, {Topic: "b"}, {Topic: "a"}}
			reqs = slices.Insert(reqs, tt.at, PublishRequest{Topic: tt.bad})
			pos, err := NewMemoryBroker(e).Publish(context.Background(), reqs)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Publish = %v, want %v", err, tt.want)
			}
			if pos != nil {
				t.Errorf("positions %v returned with the error", pos)
			}
			if !strings.Contains(err.Error(), "publication "+string(rune('0'+tt.at))) {
				t.Errorf("error %q does not name publication %d", err, tt.at)
			}
			if current(e, "a") != beforeA || current(e, "b") != beforeB {
				t.Errorf("Current changed: a %+v -> %+v, b %+v -> %+v", beforeA, current(e, "a"), beforeB, current(e, "b"))
			}
			if sink.count(0) != sent {
				t.Errorf("the sink got %d publications of a refused batch", sink.count(0)-sent)
			}
		})
	}
}

func TestMemoryBrokerTooManyTopicsPublishesNothing(t *testing.T) {
	e := NewEngine(EngineConfig{MaxTopics: 2}, nil)
	mustPublish(t, e, "a", false)
	before := current(e, "a")
	b := NewMemoryBroker(e)
	_, err := b.Publish(context.Background(), []PublishRequest{{Topic: "a"}, {Topic: "b"}, {Topic: "c"}})
	if !errors.Is(err, ErrTooManyTopics) {
		t.Fatalf("Publish over MaxTopics = %v, want ErrTooManyTopics", err)
	}
	if current(e, "a") != before || current(e, "b").Seq != 0 || current(e, "c").Seq != 0 {
		t.Fatalf("a refused batch published: a %+v b %+v c %+v", current(e, "a"), current(e, "b"), current(e, "c"))
	}
}

// A refused batch must not leave topics behind: they would take MaxTopics
// slots though nothing was ever published to them.
func TestMemoryBrokerRefusedBatchCreatesNoTopics(t *testing.T) {
	e := NewEngine(EngineConfig{MaxTopics: 2}, nil)
	b := NewMemoryBroker(e)
	_, err := b.Publish(context.Background(), []PublishRequest{{Topic: "new.1"}, {Topic: "new.2"}, {Topic: "bad name"}})
	if !errors.Is(err, ErrBadName) {
		t.Fatalf("Publish = %v, want ErrBadName", err)
	}
	if n := e.Topics(); n != 0 {
		t.Errorf("a refused batch left %d topics behind", n)
	}
	if _, err := b.Publish(context.Background(), []PublishRequest{{Topic: "x"}, {Topic: "y"}}); err != nil {
		t.Errorf("a batch of 2 new topics with MaxTopics 2 after a refused batch: %v", err)
	}
}

func TestMemoryBrokerReadyClose(t *testing.T) {
	b := NewMemoryBroker(NewEngine(EngineConfig{}, nil))
	if err := b.Ready(); err != nil {
		t.Fatalf("Ready = %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
}
