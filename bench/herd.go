package bench

import (
	"context"
	"fmt"
	"time"
)

// runHerd subscribes Conns connections and publishes; when the measured
// window opens, every connection drops at once (a TCP reset, as when a
// network goes), stays away for HerdGap while publishing goes on, then all
// reconnect at once with since (the last publication each holds). It
// reports the time until all are subscribed again, how many recovered (rec
// true) or were reset, and, over the whole run, that no publication went
// missing or came twice. The window's latency includes the recovered
// publications, which waited for their subscriber to come back.
func runHerd(ctx context.Context, c *Config, tgt *target, emit func(Result) error) error {
	s, err := openSession(ctx, c, tgt, c.Conns, 0)
	if err != nil {
		return err
	}
	defer s.close()
	fig := &HerdFigures{Conns: c.Conns}
	r, err := s.measure(ctx, c.Rate, func() error {
		p := s.pool
		sentBefore := s.pub.sent.Load()
		if err := p.closeAll(ctx, 10*time.Second); err != nil {
			return fmt.Errorf("herd disconnect: %w", err)
		}
		c.logf("herd: %d connections dropped; back in %v", c.Conns, c.HerdGap)
		sleepUntil(ctx, time.Now().Add(c.HerdGap))
		repliesBefore := p.replies.Load()
		recBefore, notRecBefore := p.recovered.Load(), p.notRec.Load()
		t0 := time.Now()
		if err := p.dialAll(ctx, c.Dialers, true, true); err != nil {
			return fmt.Errorf("herd reconnect: %w", err)
		}
		fig.DialS = time.Since(t0).Seconds()
		if err := p.waitReplies(ctx, repliesBefore, c.Conns, 60*time.Second); err != nil {
			return fmt.Errorf("herd resubscribe: %w", err)
		}
		fig.ResubscribeS = time.Since(t0).Seconds()
		fig.Recovered = p.recovered.Load() - recBefore
		fig.NotRec = p.notRec.Load() - notRecBefore
		fig.PubsWhileAway = s.pub.sent.Load() - sentBefore
		c.logf("herd: %d resubscribed in %.2fs (%d recovered, %d not)", c.Conns, fig.ResubscribeS, fig.Recovered, fig.NotRec)
		if fig.ResubscribeS > c.Duration.Seconds() {
			return fmt.Errorf("herd: resubscribing took %.1fs, longer than the %v window: give a longer --duration", fig.ResubscribeS, c.Duration)
		}
		return nil
	})
	r.Params.HerdGapS = c.HerdGap.Seconds()
	r.Herd = fig
	// Recovered publications waited for their subscriber: a second of
	// latency here is the gap, not the server falling behind.
	r.KeepsUp = r.Expected > 0 && r.Received == r.Expected && r.Missing == 0 && r.Dups == 0
	if eerr := emit(r); err == nil {
		err = eerr
	}
	return err
}
