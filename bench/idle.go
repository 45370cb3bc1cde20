package bench

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"time"
)

// runIdle opens Conns WebSocket connections that do nothing after their
// handshake and (unless IdleNoSub) one sub each, and reports what they
// cost the server in memory: (RSS after - RSS before) / Conns, RSS read
// from /proc/<pid>/status VmRSS after the settle pause. The bench's own
// memory per connection is reported the same way.
func runIdle(ctx context.Context, c *Config, tgt *target, emit func(Result) error) error {
	if c.Proto == ProtoTCP {
		return fmt.Errorf("idle measures WebSocket connections: give --proto ws-json or ws-msgpack")
	}
	n := c.Conns
	if err := checkFDs(n); err != nil {
		return err
	}
	if err := checkServerFDs(c, tgt, n); err != nil {
		return err
	}
	r := baseResult(c)
	r.Params.DurationS, r.Params.WarmupS, r.Params.Rate, r.Params.Size, r.Params.PubConns = 0, 0, 0, 0, 0
	r.Params.SettleS = c.Settle.Seconds()
	sub := !c.IdleNoSub
	r.Params.IdleSub = &sub
	fig := &IdleFigures{Conns: n, Subscribed: sub}
	r.Idle = fig

	// The bench's garbage from an earlier scenario would hide its own cost.
	runtime.GC()
	debug.FreeOSMemory()
	if mem, err := procMem(os.Getpid()); err == nil {
		fig.BenchRSSBeforeKiB = mem.RSS
	}
	if tgt.pid != 0 {
		if mem, err := procMem(tgt.pid); err == nil {
			fig.ServerRSSBeforeKiB = mem.RSS
		}
	}

	clk := newClock()
	p, err := newPool(c, c.Proto, clk)
	if err != nil {
		return err
	}
	defer p.stop()
	topics := topicNames(c.Scenario, c.Topics)
	p.add(n, func(i int) []string {
		if !sub {
			return nil
		}
		return []string{topics[i%len(topics)]}
	})
	t0 := time.Now()
	if err := p.dialAll(ctx, c.Dialers, sub, false); err != nil {
		return err
	}
	if sub {
		if err := p.waitReplies(ctx, 0, n, 30*time.Second); err != nil {
			return err
		}
	}
	fig.OpenS = time.Since(t0).Seconds()
	if e := p.firstErr.Load(); e != nil {
		return fmt.Errorf("%d connections failed: %s", p.errs.Load(), *e)
	}
	c.logf("idle: %d connections open in %.1fs; settling %v", n, fig.OpenS, c.Settle)

	m := startMeter(ctx, c, tgt)
	sleepUntil(ctx, time.Now().Add(c.Settle))
	m.stop(ctx, c, &r)
	fig.ServerCPUSettleS = r.Server.CPUSeconds
	r.Server.CPUSeconds = nil
	r.WindowS = c.Settle.Seconds()
	if closed := p.closed.Load(); closed > 0 {
		first := "none"
		if e := p.firstErr.Load(); e != nil {
			first = *e
		}
		return fmt.Errorf("the server closed %d of %d idle connections (first error: %s)", closed, n, first)
	}
	if tgt.pid != 0 {
		r.Server.RSSBeforeKiB = fig.ServerRSSBeforeKiB
		fig.ServerRSSAfterKiB = r.Server.RSSKiB
		fig.ServerBytesPerConn = float64(fig.ServerRSSAfterKiB-fig.ServerRSSBeforeKiB) * 1024 / float64(n)
	}
	fig.BenchRSSAfterKiB = r.Bench.RSSKiB
	fig.BenchBytesPerConn = float64(fig.BenchRSSAfterKiB-fig.BenchRSSBeforeKiB) * 1024 / float64(n)
	r.KeepsUp = true
	r.Notes = append(r.Notes, "server RSS before is read just before dialing; memory the server freed earlier but has not returned to the OS can be reused and make the per-connection figure look smaller")
	return emit(r)
}
