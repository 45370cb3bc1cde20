package topic

import (
	"sync"
	"sync/atomic"
)

// Position names one message of a topic: its epoch and its sequence number.
type Position struct {
	Epoch string `json:"e" msgpack:"e"`
	Seq   uint64 `json:"s" msgpack:"s"`
}

// Publication is one message of a topic at its place in the topic's history.
// It is immutable once the engine has given it its Seq; the same value is
// shared by the history ring and by every subscriber that receives it.
type Publication struct {
	Topic string
	Epoch string
	Seq   uint64
	// Snap marks a snapshot: the full state, which later updates apply on top of.
	Snap bool
	// Data is the payload exactly as the producer sent it, JSON text, or
	// msgpack when DataMsgpack is set. Consumers convert it, never topic/.
	Data        []byte
	DataMsgpack bool

	// Frames is the encode-once cache of the wire frames of this publication.
	Frames Frames
}

// numFrameSlots is how many wire formats a publication can cache frames for.
const numFrameSlots = 4

// Frames caches the encoded frames of a publication, one slot per wire format,
// so a publication is encoded once per format however many subscribers get
// it. topic/ knows nothing of the formats: the codec fills and reads the
// slots. A slot is filled at most once; Frames is safe for concurrent use.
type Frames struct {
	mu    sync.Mutex
	frame [numFrameSlots]atomic.Pointer[[]byte]
}

// Get returns the frame of p in slot i, calling encode(p) to fill the slot on
// first use. Concurrent callers of an empty slot wait for the one encode.
// encode should be a plain function, not a closure, so Get does not allocate.
func (f *Frames) Get(i int, p *Publication, encode func(*Publication) []byte) []byte {
	if b := f.frame[i].Load(); b != nil {
		return *b
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if b := f.frame[i].Load(); b != nil {
		return *b
	}
	b := encode(p)
	f.frame[i].Store(&b)
	return b
}
