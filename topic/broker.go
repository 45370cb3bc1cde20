package topic

import (
	"context"
	"errors"
	"fmt"
)

// ErrUnavailable means the broker's backend is down (PROTOCOL.md 503).
var ErrUnavailable = errors.New("backend unavailable")

// PublishRequest is one publication as a producer hands it in.
type PublishRequest struct {
	Topic string
	// Data is the payload, JSON text or msgpack (DataMsgpack). The broker
	// keeps it: the caller must not change it afterwards.
	Data        []byte
	DataMsgpack bool
	Snap        bool
}

// Broker gives publications their place (seq and epoch) and carries them to
// the Engine of every node. The memory broker serves one node; the Redis
// broker shares topics between nodes.
type Broker interface {
	// Publish places each request in order and returns their positions. It
	// is all or nothing for requests the caller has validated: on error no
	// request was published.
	Publish(ctx context.Context, reqs []PublishRequest) ([]Position, error)
	// Ready returns nil while the broker can publish, or why it cannot.
	Ready() error
	// Close stops the broker.
	Close() error
}

// MemoryBroker is the single-node Broker: the Engine itself assigns seq and
// epoch. It never blocks, so the event loops may call it.
type MemoryBroker struct {
	engine *Engine
}

// NewMemoryBroker returns a broker that publishes straight into engine.
func NewMemoryBroker(engine *Engine) *MemoryBroker { return &MemoryBroker{engine: engine} }

// Publish implements Broker. Requests are checked first so that a bad one
// publishes nothing.
func (b *MemoryBroker) Publish(_ context.Context, reqs []PublishRequest) ([]Position, error) {
	names := make([]string, len(reqs))
	for i, r := range reqs {
		if err := ValidName(r.Topic); err != nil {
			return nil, fmt.Errorf("publication %d: %w", i, err)
		}
		names[i] = r.Topic
	}
	if !b.engine.roomFor(names) {
		return nil, fmt.Errorf("batch: %w (limit %d)", ErrTooManyTopics, b.engine.cfg.MaxTopics)
	}
	pos := make([]Position, len(reqs))
	for i, r := range reqs {
		p, err := b.engine.Publish(r.Topic, r.Data, r.DataMsgpack, r.Snap)
		// Only a race for the engine's last free topic places can fail here,
		// after the check above passed for this batch.
		if err != nil {
			return pos[:i], fmt.Errorf("publication %d: %w", i, err)
		}
		pos[i] = p
	}
	return pos, nil
}

// Ready implements Broker: memory is always ready.
func (b *MemoryBroker) Ready() error { return nil }

// Close implements Broker.
func (b *MemoryBroker) Close() error { return nil }

// Remote is a Broker whose calls may block (Redis): an event loop hands it
// work and gets the answer later, through done, called from another
// goroutine. Its engine is in Held mode: a topic must be followed before
// it can be subscribed to or pulled.
type Remote interface {
	Broker
	// PublishAsync places one publication; done gets its position.
	PublishAsync(r PublishRequest, done func(Position, error))
	// Follow has the engine hold the named topics; done gets nil once it
	// does, or the first error (ErrUnavailable, ErrTooManyTopics).
	Follow(names []string, done func(error))
}
