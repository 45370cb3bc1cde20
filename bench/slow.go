package bench

import (
	"context"
	"fmt"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tickfan/tickfan/client"
)

// slowRcvBuf is a stalled client's socket receive buffer, set before it
// connects: small, so that the server's queue for it fills sooner, but
// above loopback's 64 KiB segment, or the kernel would never open a window
// smaller than a segment and the connection would crawl on zero-window
// probes once it reads again. (The server's own socket send buffer still
// grows to tcp_wmem's maximum, 4 MiB here, before its outbox fills.)
const slowRcvBuf = 128 << 10

// slowConn is a subscriber that reads during the warm-up and then stops
// reading altogether: a plain blocking socket that nobody reads keeps the
// kernel's buffers full, which is what the server sees of a stalled client.
type slowConn struct {
	c      *client.Conn
	stop   atomic.Bool
	done   chan struct{}
	lags   int64
	resets int64
	closes int64
}

func dialSlow(ctx context.Context, c *Config, topics []string) (*slowConn, error) {
	conn, err := client.Dial(ctx, c.dialConfig(c.Proto, slowRcvBuf))
	if err != nil {
		return nil, err
	}
	_ = conn.SetWriteDeadline(time.Now().Add(dialTimeout))
	if err := conn.Subscribe(1, topics, nil); err != nil {
		conn.Close()
		return nil, fmt.Errorf("slow client sub: %w", err)
	}
	sc := &slowConn{c: conn, done: make(chan struct{})}
	go sc.read(time.Time{}, false)
	return sc, nil
}

// read reads and parses until stopped, until deadline (if set), or, when
// untilLag, until a lag, reset or close is seen and what was read with it
// is parsed. What it read of a frame stays in the connection for the next
// call.
func (sc *slowConn) read(deadline time.Time, untilLag bool) {
	defer close(sc.done)
	_ = sc.c.SetReadDeadline(deadline)
	mp := sc.c.Proto().Msgpack()
	seen := false
	for !sc.stop.Load() {
		if untilLag && seen && !sc.c.Buffered() {
			return
		}
		body, err := sc.c.NextBody()
		if err != nil {
			return
		}
		if _, ok := client.ScanPublication(body, mp); ok {
			continue
		}
		m, err := client.Decode(body, mp)
		if err != nil {
			continue
		}
		switch m.Kind {
		case client.KindLag:
			sc.lags++
			seen = true
		case client.KindReset:
			sc.resets++
			seen = true
		case client.KindClose:
			sc.closes++
			seen = true
		}
	}
}

// halt stops the reader now, leaving everything after in the socket.
func (sc *slowConn) halt() {
	sc.stop.Store(true)
	_ = sc.c.SetReadDeadline(time.Now())
	<-sc.done
}

// runSlow is fanout where SlowFrac of the connections stop reading after
// the warm-up. It reports the healthy connections' latency, missing and
// duplicates, and what the stalled ones find in their backlog afterwards
// (they read it for up to Drain, until the lag the server must have sent).
// A slow connection holds every topic, so that its share of the server's
// outbox fills within the run at a rate the healthy ones can take.
func runSlow(ctx context.Context, c *Config, tgt *target, emit func(Result) error) error {
	nSlow := int(math.Round(float64(c.Conns) * c.SlowFrac))
	nHealthy := c.Conns - nSlow
	if nSlow < 1 || nHealthy < 1 {
		return fmt.Errorf("--slow-frac %v of %d connections leaves no slow or no healthy one", c.SlowFrac, c.Conns)
	}
	s, err := openSession(ctx, c, tgt, nHealthy, nSlow)
	if err != nil {
		return err
	}
	defer s.close()
	slow := make([]*slowConn, 0, nSlow)
	defer func() {
		for _, sc := range slow {
			if tc, ok := sc.c.NetConn().(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			sc.c.Close()
		}
	}()
	for range nSlow {
		sc, err := dialSlow(ctx, c, s.topics)
		if err != nil {
			return err
		}
		slow = append(slow, sc)
	}
	c.logf("slow: %d healthy and %d slow connections; the slow stop reading after %v", nHealthy, nSlow, c.Warmup)
	r, err := s.measure(ctx, c.Rate, func() error {
		for _, sc := range slow {
			sc.halt()
		}
		return nil
	})
	if err == nil {
		r.Params.Conns = c.Conns
		r.Params.SlowFrac = c.SlowFrac
		fig := &SlowFigures{SlowConns: nSlow, HealthyConns: nHealthy, HealthyLags: r.Lags}
		r.Slow = fig
		readBacklogs(slow, c.Drain)
		for _, sc := range slow {
			fig.LagsSeen += sc.lags
			fig.ResetsSeen += sc.resets
			fig.ClosedSeen += sc.closes
			if sc.lags > 0 || sc.resets > 0 {
				fig.ConnsLagged++
			}
		}
		if fig.ConnsLagged < nSlow {
			r.Notes = append(r.Notes, fmt.Sprintf("%d of %d slow connections saw no lag: the server's outbox and the sockets absorbed the whole run; raise --rate, --size or --duration", nSlow-fig.ConnsLagged, nSlow))
		}
	}
	if eerr := emit(r); err == nil {
		err = eerr
	}
	return err
}

// readBacklogs lets every stalled connection read what waits for it, in
// parallel, until each has seen its lag (or reset, or close) or budget
// has passed. Each first grows its receive buffer to read faster.
func readBacklogs(slow []*slowConn, budget time.Duration) {
	deadline := time.Now().Add(budget)
	var wg sync.WaitGroup
	for _, sc := range slow {
		if sc.lags+sc.resets+sc.closes > 0 {
			continue
		}
		sc.stop.Store(false)
		sc.done = make(chan struct{})
		if tc, ok := sc.c.NetConn().(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4 << 20)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc.read(deadline, true)
		}()
	}
	wg.Wait()
}
