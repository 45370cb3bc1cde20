package topic

import "testing"

// TestSample: each topic's publications since the previous Sample, its
// seq and its subscribers; a name with subscribers only is no topic.
func TestSample(t *testing.T) {
	e := NewEngine(EngineConfig{Loops: 2}, &countSink{})
	for range 3 {
		if _, err := e.Publish("a.x", []byte(`1`), false, false); err != nil {
			t.Fatal(err)
		}
	}
	for _, loop := range []int{0, 1} {
		if _, err := e.Subscribe("a.x", loop, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.Subscribe("waiting.only", 0, nil); err != nil {
		t.Fatal(err)
	}
	sample := func() map[string]TopicSample {
		got := map[string]TopicSample{}
		if n := e.Sample(func(ts TopicSample) { got[ts.Name] = ts }); n != len(got) {
			t.Fatalf("Sample returned %d, visited %d", n, len(got))
		}
		return got
	}
	got := sample()
	if len(got) != 1 || got["a.x"] != (TopicSample{Name: "a.x", Seq: 3, Subscribers: 2, Published: 3, Fresh: true}) {
		t.Fatalf("first Sample: %+v", got)
	}
	for range 2 {
		if _, err := e.Publish("a.x", []byte(`1`), false, false); err != nil {
			t.Fatal(err)
		}
	}
	e.Unsubscribe("a.x", 1)
	if got := sample(); got["a.x"] != (TopicSample{Name: "a.x", Seq: 5, Subscribers: 1, Published: 2}) {
		t.Fatalf("second Sample: %+v", got)
	}
	if got := sample(); got["a.x"].Published != 0 {
		t.Fatalf("third Sample, nothing published since: %+v", got)
	}
}
