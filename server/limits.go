package server

import (
	"net/netip"
	"sync"
)

// ipLimits counts open connections and recent connection attempts per IP
// address. It is touched once per accept and once per close, never on the
// publish path, so one mutex is enough.
type ipLimits struct {
	maxOpen int // 0: no bound
	rate    int // new connections per second; 0: no bound

	mu   sync.Mutex
	byIP map[netip.Addr]*ipCount
}

type ipCount struct {
	open   int
	second int64 // the second (unix) the attempts count
	tries  int
}

func newIPLimits(maxOpen, rate int) *ipLimits {
	return &ipLimits{maxOpen: maxOpen, rate: rate, byIP: make(map[netip.Addr]*ipCount)}
}

// admit records a new connection from ip at unix second now and returns ""
// if it may stay, or the limit it broke. An admitted connection must be
// released.
func (l *ipLimits) admit(ip netip.Addr, now int64) string {
	if l.maxOpen <= 0 && l.rate <= 0 {
		return ""
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.byIP[ip]
	if c == nil {
		c = &ipCount{}
		l.byIP[ip] = c
	}
	if c.second != now {
		c.second, c.tries = now, 0
	}
	c.tries++
	switch {
	case l.rate > 0 && c.tries > l.rate:
		l.forget(ip, c)
		return "ip_rate"
	case l.maxOpen > 0 && c.open >= l.maxOpen:
		return "per_ip"
	}
	c.open++
	return ""
}

// release records that an admitted connection from ip closed.
func (l *ipLimits) release(ip netip.Addr) {
	if l.maxOpen <= 0 && l.rate <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if c := l.byIP[ip]; c != nil {
		c.open--
		l.forget(ip, c)
	}
}

// forget drops an address with nothing open; the rate window is lost with
// it, which lets a client that closes everything try again a little early.
func (l *ipLimits) forget(ip netip.Addr, c *ipCount) {
	if c.open <= 0 && (l.rate <= 0 || c.tries <= l.rate) {
		delete(l.byIP, ip)
	}
}

// cmdBucket is a connection's command budget: a token bucket refilled at
// rate per second, holding at most rate tokens.
type cmdBucket struct {
	last    int64   // coarse clock, unix ns
	tokens  float32 // float32 keeps the bucket, and so each conn, small
	refused int32   // commands refused since the last one allowed
}

// take spends a token at time now (unix ns) and reports whether there was one.
func (b *cmdBucket) take(rate int, now int64) bool {
	if b.last == 0 {
		b.tokens, b.last = float32(rate), now
	}
	b.tokens = float32(min(float64(rate), float64(b.tokens)+float64(now-b.last)*float64(rate)/1e9))
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		b.refused = 0
		return true
	}
	b.refused++
	return false
}
