package client

import (
	"math/rand/v2"
	"time"
)

// Jitter says how a Backoff spreads its delays, so that clients cut off
// together (a server restart, a drain) do not all come back at the same
// instant.
type Jitter uint8

const (
	// FullJitter waits a random time in [0, d], d the exponential delay
	// ("Exponential Backoff And Jitter", AWS Architecture Blog, 2015):
	// the widest spread, so the lightest herd on the server.
	FullJitter Jitter = iota
	// EqualJitter waits d/2 plus a random time in [0, d/2]: never less
	// than half the delay.
	EqualJitter
	// NoJitter waits d exactly (for tests and single clients).
	NoJitter
)

// Backoff is the wait between connection attempts: Min doubled with each
// attempt that failed, at most Max, spread by Jitter. The zero value of
// each field means its default.
type Backoff struct {
	// Min is the delay of the first attempt after a healthy connection.
	// Default 100 ms.
	Min time.Duration
	// Max bounds the delay. Default 10 s.
	Max time.Duration
	// Jitter spreads the delays. Default FullJitter.
	Jitter Jitter
	// Healthy is how long a connection must have been subscribed for the
	// next disconnect to count as the first failure again (the delay goes
	// back to Min). A connection that breaks sooner grows the delay, so
	// that a server which accepts and drops every client is not hammered.
	// Default 10 s.
	Healthy time.Duration
}

// The defaults of Backoff.
const (
	DefaultBackoffMin     = 100 * time.Millisecond
	DefaultBackoffMax     = 10 * time.Second
	DefaultBackoffHealthy = 10 * time.Second
)

func (b Backoff) withDefaults() Backoff {
	if b.Min <= 0 {
		b.Min = DefaultBackoffMin
	}
	if b.Max <= 0 {
		b.Max = DefaultBackoffMax
	}
	if b.Max < b.Min {
		b.Max = b.Min
	}
	if b.Healthy <= 0 {
		b.Healthy = DefaultBackoffHealthy
	}
	return b
}

// Delay is the wait before attempt n after failures (n from 0: the first
// attempt after a healthy connection). Any goroutine may call it.
func (b Backoff) Delay(n int) time.Duration {
	return b.delay(n, rand.Int64N)
}

// delay is Delay with the random source given: rnd(k) returns a number
// in [0, k).
func (b Backoff) delay(n int, rnd func(int64) int64) time.Duration {
	b = b.withDefaults()
	d := b.Min
	for i := 0; i < n && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	switch b.Jitter {
	case FullJitter:
		return time.Duration(rnd(int64(d) + 1))
	case EqualJitter:
		return d/2 + time.Duration(rnd(int64(d/2)+1))
	}
	return d
}
