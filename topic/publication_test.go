package topic

import (
	"sync"
	"sync/atomic"
	"testing"
)

var encodeCalls atomic.Int64

func encodeSeq(p *Publication) []byte {
	encodeCalls.Add(1)
	return []byte{byte(p.Seq)}
}

func encodeTopic(p *Publication) []byte { return []byte(p.Topic) }

func TestFramesEncodeOncePerSlot(t *testing.T) {
	encodeCalls.Store(0)
	p := &Publication{Topic: "f", Seq: 7}
	var wg sync.WaitGroup
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				if b := p.Frames.Get(1, p, encodeSeq); len(b) != 1 || b[0] != 7 {
					t.Errorf("Get(1) = %v", b)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := encodeCalls.Load(); n != 1 {
		t.Fatalf("encode called %d times for one slot, want 1", n)
	}
	// Other slots are separate.
	if b := p.Frames.Get(0, p, encodeTopic); string(b) != "f" {
		t.Fatalf("Get(0) = %q, want the topic's frame", b)
	}
	if b := p.Frames.Get(numFrameSlots-1, p, encodeTopic); string(b) != "f" {
		t.Fatalf("Get(last) = %q", b)
	}
	if b := p.Frames.Get(1, p, encodeTopic); len(b) != 1 || b[0] != 7 {
		t.Fatalf("slot 1 was encoded again: %q", b)
	}
}

func TestFramesGetFilledDoesNotAllocate(t *testing.T) {
	p := &Publication{Topic: "f"}
	p.Frames.Get(0, p, encodeTopic)
	if n := testing.AllocsPerRun(100, func() { p.Frames.Get(0, p, encodeTopic) }); n != 0 {
		t.Fatalf("Get of a filled slot allocates %v times", n)
	}
}
