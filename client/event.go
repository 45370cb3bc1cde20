package client

import (
	"errors"
	"time"
)

// Event is what Subscription.Next returns: one of Pub, Subscribed,
// Recovered, Reset, Lag, Resumed, Connected and Disconnected. Switch on
// its type.
type Event interface{ event() }

// Pub is a publication of a subscribed topic. Within one epoch
// the publications of a topic come in Seq order, with no gap and no
// duplicate; a Reset comes before any break (PROTOCOL.md, Subscribe and
// recovery). On a conflated topic (Subscription's conflate patterns) Seq
// only increases: a jump there is the server keeping the latest value.
type Pub struct {
	Topic string
	Epoch string // the history the publication belongs to
	Seq   uint64
	Data  []byte // the payload, in the connection's encoding (see DecodeData)
	Snap  bool   // a snapshot: the full state, which later updates apply to

	mp bool
}

// DecodeData decodes the payload into v.
func (p Pub) DecodeData(v any) error { return Message{mp: p.mp}.decodeRaw(p.Data, v) }

// Msgpack reports whether Data is msgpack (else JSON).
func (p Pub) Msgpack() bool { return p.mp }

// Subscribed is the server's answer to a subscription without a position
// to continue from: the topic stands at Epoch and Seq. What follows is
// the topic's latest snapshot (at a seq up to Seq) and the updates after
// it, or, for a topic without snapshots, the publications after Seq.
type Subscribed struct {
	Topic string
	Epoch string
	Seq   uint64
}

// Recovered says that a topic continues where the subscription left it:
// the Missed publications after From (in Epoch) follow, then live ones.
// It comes after every reconnect for each topic the server could continue
// (rec true), and after a hole in the stream was repaired (Gap).
type Recovered struct {
	Topic  string
	Epoch  string
	From   uint64 // the last seq held
	Missed uint64 // publications From+1 ... From+Missed follow
	Gap    bool   // a hole in the stream, not a reconnect, was repaired
}

// Reset says that continuity of a topic is broken: its history is gone
// or its epoch changed (a server restart without Redis, for one). Drop
// everything held of the topic: the next publication is its snapshot at
// Seq, or, for a topic without snapshots, an update after Seq, in Epoch.
type Reset struct {
	Topic string
	Epoch string
	Seq   uint64
}

// Lag says that the server stopped pushing a topic because the client
// read too slowly (or the server fell behind); Seq is the last seq held.
// The server resumes by itself (Resumed), or sends a Reset when the range
// is gone from its history.
type Lag struct {
	Topic string
	Seq   uint64
}

// Resumed says that a topic that lagged is pushed again, from Seq+1.
type Resumed struct {
	Topic string
	Seq   uint64 // the last seq held when it resumed
}

// Connected says that a connection is up (and authenticated, when the
// subscription has a token). Subscribed, Recovered or Reset of each topic
// follow.
type Connected struct {
	Addr    string
	Attempt int       // connections made before this one
	User    string    // the token's sub claim; "" without a token
	Expires time.Time // the token's expiry; zero without a token
}

// Disconnected says that a connection ended, or a connection attempt
// failed, and when the next attempt is made.
type Disconnected struct {
	Err   error         // why; a *CloseError when the server closed with a code
	Code  int           // the server's close code (4000-4007, or RFC 6455's), 0 if none
	Retry time.Duration // the wait before the next attempt
}

func (Pub) event()          {}
func (Subscribed) event()   {}
func (Recovered) event()    {}
func (Reset) event()        {}
func (Lag) event()          {}
func (Resumed) event()      {}
func (Connected) event()    {}
func (Disconnected) event() {}

// ErrClosed is returned by Next once Close was called.
var ErrClosed = errors.New("subscription closed")

// ErrIdle is the Err of a Disconnected that ended a connection on which
// the server had sent nothing at all for the idle timeout: not even its
// heartbeat, so the link is presumed dead.
var ErrIdle = errors.New("nothing from the server within the idle timeout")
