package redisbroker

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/rueidis"
)

// shard is one subscription connection: the only one on a single Redis,
// one per master on a cluster (sharded pub/sub: SSUBSCRIBE on the master
// that owns the channel's slot). Its goroutine keeps it up: when it breaks,
// or a probe does not come back, it is made again, its channels
// subscribed again and its topics read again from the seq the node holds.
type shard struct {
	b     *Broker
	addr  string
	node  rueidis.Client
	probe string // the channel of this node's probes on this shard

	mu      sync.Mutex
	dc      rueidis.DedicatedClient
	release func()
	up      bool
	why     string
	// probeSent is when the probe in flight went out (zero: none);
	// probeBack when the last one came back.
	probeSent, probeBack time.Time
	kill                 chan struct{} // closed to make the connection again
	stop                 chan struct{} // closed to end the shard
	stopOnce             sync.Once
	done                 chan struct{}
}

func (b *Broker) newShard(addr string, node rueidis.Client, probe string) *shard {
	return &shard{b: b, addr: addr, node: node, probe: probe, why: "connecting", kill: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
}

// notReady returns why the shard does not carry publications now ("" when
// it does). s.b.mu is held.
func (s *shard) notReady() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !s.up:
		return s.why
	case !s.probeSent.IsZero() && time.Since(s.probeSent) > 2*s.b.cfg.Probe:
		return "probe not back for " + time.Since(s.probeSent).Round(time.Millisecond).String()
	}
	return ""
}

// subCmds builds the commands that subscribe (or unsubscribe) channels:
// one command for all on a single Redis, one per slot on a cluster.
func (s *shard) subCmds(dc rueidis.DedicatedClient, names []string, sub bool) rueidis.Commands {
	if !s.b.cluster {
		chans := make([]string, len(names))
		for i, n := range names {
			chans[i] = channelOf(n)
		}
		if sub {
			return rueidis.Commands{dc.B().Subscribe().Channel(chans...).Build()}
		}
		return rueidis.Commands{dc.B().Unsubscribe().Channel(chans...).Build()}
	}
	bySlot := map[uint16][]string{}
	for _, n := range names {
		c := channelOf(n)
		bySlot[slotOf(c)] = append(bySlot[slotOf(c)], c)
	}
	cmds := make(rueidis.Commands, 0, len(bySlot))
	for _, chans := range bySlot {
		if sub {
			cmds = append(cmds, dc.B().Ssubscribe().Channel(chans...).Build())
		} else {
			cmds = append(cmds, dc.B().Sunsubscribe().Channel(chans...).Build())
		}
	}
	return cmds
}

// subscribe subscribes the topics' channels; it fails while the
// connection is down (the follows then fail with topic.ErrUnavailable).
func (s *shard) subscribe(names []string) error {
	dc, up, why := s.await()
	if !up {
		return s.b.fail(fmt.Errorf("subscription connection to %s: %s", s.addr, why))
	}
	ctx, cancel := context.WithTimeout(s.b.ctx, s.b.cfg.Timeout)
	defer cancel()
	for _, r := range dc.DoMulti(ctx, s.subCmds(dc, names, true)...) {
		if err := r.Error(); err != nil {
			s.broken("subscribe: " + err.Error())
			return s.b.fail(err)
		}
	}
	return nil
}

// await waits, at most Timeout, for the connection to be up.
func (s *shard) await() (rueidis.DedicatedClient, bool, string) {
	deadline := time.Now().Add(s.b.cfg.Timeout)
	for {
		s.mu.Lock()
		dc, up, why := s.dc, s.up, s.why
		s.mu.Unlock()
		if up || time.Now().After(deadline) || s.b.ctx.Err() != nil {
			return dc, up, why
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *shard) unsubscribe(names []string) {
	s.mu.Lock()
	dc, up := s.dc, s.up
	s.mu.Unlock()
	if !up {
		return // a connection made again subscribes only what is followed
	}
	ctx, cancel := context.WithTimeout(s.b.ctx, s.b.cfg.Timeout)
	defer cancel()
	for _, r := range dc.DoMulti(ctx, s.subCmds(dc, names, false)...) {
		if err := r.Error(); err != nil {
			s.broken("unsubscribe: " + err.Error())
			return
		}
	}
}

// broken has the shard's goroutine make its connection again.
func (s *shard) broken(why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.up {
		s.up, s.why = false, why
		if why != "closed" {
			s.b.log.Warn("redis subscription connection lost", "addr", s.addr, "why", why)
		}
		close(s.kill)
	}
}

func (s *shard) close() {
	s.stopOnce.Do(func() { close(s.stop) })
	s.broken("closed")
	<-s.done
}

// keep makes the connection and makes it again whenever it breaks, with
// a backoff from 50 ms to 1 s while Redis does not answer.
func (s *shard) keep() {
	defer close(s.done)
	backoff := 50 * time.Millisecond
	for {
		select {
		case <-s.stop:
			return
		default:
		}
		wait, err := s.connect()
		if err != nil {
			s.mu.Lock()
			s.why = err.Error()
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		s.b.stats.Rebuilds.Add(1)
		s.mu.Lock()
		kill := s.kill
		s.mu.Unlock()
		select {
		case <-s.stop:
		case err := <-wait:
			why := "disconnected"
			if err != nil {
				why = err.Error()
			}
			s.broken(why)
		case <-kill:
		}
		s.mu.Lock()
		s.up, s.probeSent = false, time.Time{}
		s.kill = make(chan struct{})
		release := s.release
		s.dc, s.release = nil, nil
		s.mu.Unlock()
		release()
	}
}

// connect makes the connection, subscribes the probe channel and the
// channels of every topic this shard carries, and has those topics read
// again: publications may have been missed while it was down.
func (s *shard) connect() (<-chan error, error) {
	dc, release := s.node.Dedicate()
	wait := dc.SetPubSubHooks(rueidis.PubSubHooks{
		OnMessage: func(m rueidis.PubSubMessage) {
			if m.Channel == s.probe {
				s.mu.Lock()
				if m.Message == strconv.FormatInt(s.probeSent.UnixNano(), 10) {
					s.probeSent, s.probeBack = time.Time{}, time.Now()
				}
				s.mu.Unlock()
				return
			}
			s.b.onMessage(topicOf(m.Channel), m.Message)
		},
		OnSubscription: func(ps rueidis.PubSubSubscription) {
			if ps.Kind == "sunsubscribe" && s.b.cluster {
				// A slot moved away (resharding, failover): make the
				// connections again from the new slot map.
				go s.b.remap("slot of " + ps.Channel + " moved")
			}
		},
	})
	// Every topic of this shard, also one whose SUBSCRIBE is under way:
	// it may have gone out on the connection this one replaces.
	s.b.mu.Lock()
	var names []string
	for name := range s.b.follows {
		if s.b.shardOfLocked(name) == s {
			names = append(names, name)
		}
	}
	s.b.mu.Unlock()
	ctx, cancel := context.WithTimeout(s.b.ctx, s.b.cfg.Timeout)
	defer cancel()
	probe := dc.B().Subscribe().Channel(s.probe).Build()
	if s.b.cluster {
		probe = dc.B().Ssubscribe().Channel(s.probe).Build()
	}
	cmds := append(rueidis.Commands{probe}, s.subCmdsOrNone(dc, names)...)
	for _, r := range dc.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			release()
			return nil, err
		}
	}
	s.mu.Lock()
	s.dc, s.release, s.up, s.why = dc, release, true, ""
	s.mu.Unlock()
	s.b.mu.Lock()
	for _, name := range names {
		f := s.b.follows[name]
		switch {
		case f == nil || s.b.shardOfLocked(name) != s:
		case f.state == live:
			s.b.reread(f)
		case f.state == reading:
			// Its read may have gone out before this connection
			// subscribed: what was published in between came on no
			// connection. Read it again once that read is applied.
			f.over = true
		}
	}
	s.b.mu.Unlock()
	return wait, nil
}

func (s *shard) subCmdsOrNone(dc rueidis.DedicatedClient, names []string) rueidis.Commands {
	if len(names) == 0 {
		return nil
	}
	return s.subCmds(dc, names, true)
}

// sendProbe publishes a probe on the shard when none is in flight, and
// reports a probe lost (not back within two intervals).
func (s *shard) sendProbe(now time.Time) {
	s.mu.Lock()
	if !s.up {
		s.mu.Unlock()
		return
	}
	if !s.probeSent.IsZero() {
		lost := now.Sub(s.probeSent) > 2*s.b.cfg.Probe
		s.mu.Unlock()
		if lost {
			s.b.stats.ProbesLost.Add(1)
			s.broken("probe not back within " + (2 * s.b.cfg.Probe).String())
		}
		return
	}
	s.probeSent = now
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(s.b.ctx, s.b.cfg.Timeout)
	defer cancel()
	msg := strconv.FormatInt(now.UnixNano(), 10)
	var cmd rueidis.Completed
	if s.b.cluster {
		cmd = s.b.rc.B().Spublish().Channel(s.probe).Message(msg).Build()
	} else {
		cmd = s.b.rc.B().Publish().Channel(s.probe).Message(msg).Build()
	}
	if err := s.b.rc.Do(ctx, cmd).Error(); err != nil {
		_ = s.b.fail(err)
	} else {
		s.b.ok()
	}
}

// housekeeper probes the subscription connections and lets idle topics go.
func (b *Broker) housekeeper() {
	t := time.NewTicker(b.cfg.Probe / 2)
	defer t.Stop()
	var touched time.Time
	for {
		select {
		case <-b.ctx.Done():
			return
		case now := <-t.C:
			b.mu.Lock()
			shards := b.shards
			b.mu.Unlock()
			for _, s := range shards {
				s.sendProbe(now)
			}
			b.letGo(now)
			if now.Sub(touched) >= b.cfg.PlaceholderTTL/3 {
				touched = now
				b.touchPlaceholders()
			}
		}
	}
}

// touchPlaceholders renews, in one pipeline, the placeholders of the
// followed topics nobody has published to yet, so that they live while
// followed and for PlaceholderTTL after: a name subscribed to costs Redis
// a small hash for as long as someone holds it, no longer.
func (b *Broker) touchPlaceholders() {
	b.mu.Lock()
	var names []string
	for name, f := range b.follows {
		if f.state == live {
			names = append(names, name)
		}
	}
	b.mu.Unlock()
	ttl := strconv.FormatInt(b.cfg.PlaceholderTTL.Milliseconds(), 10)
	var cmds rueidis.Commands
	for _, name := range names {
		if pos, ok := b.engine.Held(name); ok && pos.Seq == 0 {
			cmds = append(cmds, b.touchLua.cmd(b.rc, []string{metaKey(name)}, pos.Epoch, ttl))
		}
	}
	if len(cmds) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.Timeout)
	defer cancel()
	for _, r := range b.rc.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			if isNoScript(err) {
				_ = b.loadScripts(ctx) // the next round renews them
			}
			return
		}
	}
}
