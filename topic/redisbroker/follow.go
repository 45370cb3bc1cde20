package redisbroker

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"
	"github.com/tickfan/tickfan/topic"
)

// follow is one topic the node follows, or is about to. Guarded by
// Broker.mu.
type follow struct {
	name  string
	state followState
	// waiters are called once the topic is held (or could not be).
	waiters []func(error)
	// held are publications that came on the channel while the topic was
	// read; they are applied after the read, in order. over: the read
	// must be repeated once it is done (more came than maxHeld, or the
	// connection was made again while it was under way).
	held []*topic.Publication
	over bool
	// idle is when the topic last had no local subscriber (zero: it has).
	idle time.Time
	// loaded: the engine has held the topic since its first read; a
	// read that fails after that is a failed repair, tried again.
	loaded bool
}

type followState uint8

const (
	subscribing followState = iota // SUBSCRIBE not confirmed yet
	reading                        // subscribed, the read not applied yet
	live                           // held: publications go straight to the engine
)

// maxHeld bounds the publications held for one topic during a read.
const maxHeld = 4096

// Follow has the engine hold the named topics: subscribed to their
// channels and read from Redis. done is called once, from another
// goroutine, when all of them are held, or with the first error
// (topic.ErrUnavailable while Redis is down, topic.ErrTooManyTopics).
func (b *Broker) Follow(names []string, done func(error)) {
	left := len(names)
	var first error
	each := func(err error) { // called with b.mu held, or before Follow returns
		if err != nil && first == nil {
			first = err
		}
		if left--; left == 0 {
			go done(first)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		left = 1
		each(fmt.Errorf("%w: the broker is closed", topic.ErrUnavailable))
		return
	}
	kick := false
	for _, name := range names {
		f := b.follows[name]
		if f == nil {
			f = &follow{name: name}
			b.follows[name] = f
			b.toSub[name] = f
			kick = true
		}
		f.idle = time.Time{}
		if f.state == live {
			if _, ok := b.engine.Held(name); ok {
				each(nil)
				continue
			}
		}
		f.waiters = append(f.waiters, each)
	}
	if kick {
		signal(b.subKick)
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Idle is the engine's Idle: the topic's last local subscriber left. It
// runs under the topic's lock and only notes the time.
func (b *Broker) Idle(name string) {
	b.mu.Lock()
	if f := b.follows[name]; f != nil {
		f.idle = time.Now()
	}
	b.mu.Unlock()
}

// settle answers a follow's waiters. b.mu is held.
func (f *follow) settle(err error) {
	for _, w := range f.waiters {
		w(err)
	}
	f.waiters = nil
}

// drop forgets a follow that failed; its channel is let go. b.mu is held.
func (b *Broker) drop(f *follow, err error) {
	f.settle(err)
	if b.follows[f.name] == f {
		b.forget(f)
		if f.state != subscribing {
			b.toUnsub[f.name] = struct{}{}
			signal(b.subKick)
		}
	}
}

// subscriber sends the pending SUBSCRIBEs and UNSUBSCRIBEs, as few
// commands as the channels' shards allow, whatever has gathered while the
// previous ones ran.
func (b *Broker) subscriber() {
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-b.subKick:
		}
		b.mu.Lock()
		subs, unsubs := b.toSub, b.toUnsub
		b.toSub, b.toUnsub = make(map[string]*follow), make(map[string]struct{})
		b.mu.Unlock()
		if len(unsubs) > 0 {
			byShard := map[*shard][]string{}
			for name := range unsubs {
				s := b.shardOf(name)
				byShard[s] = append(byShard[s], name)
			}
			for s, names := range byShard {
				s.unsubscribe(names)
			}
		}
		if len(subs) == 0 {
			continue
		}
		byShard := map[*shard][]*follow{}
		for _, f := range subs {
			s := b.shardOf(f.name)
			byShard[s] = append(byShard[s], f)
		}
		for s, fs := range byShard {
			names := make([]string, len(fs))
			for i, f := range fs {
				names[i] = f.name
			}
			err := s.subscribe(names)
			b.mu.Lock()
			for _, f := range fs {
				if b.follows[f.name] != f {
					continue // dropped meanwhile
				}
				if err != nil {
					b.drop(f, err)
					continue
				}
				b.setState(f, reading)
				b.toRead[f.name] = f
			}
			b.mu.Unlock()
		}
		signal(b.rdKick)
	}
}

// reader reads the topics that wait for it, all in one pipeline, and
// gives them to the engine.
func (b *Broker) reader() {
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-b.rdKick:
		}
		b.mu.Lock()
		batch := b.toRead
		b.toRead = make(map[string]*follow)
		b.mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		fs := make([]*follow, 0, len(batch))
		for _, f := range batch {
			fs = append(fs, f)
		}
		epoch, ttl := topic.NewEpoch(), strconv.FormatInt(b.cfg.PlaceholderTTL.Milliseconds(), 10)
		build := func() rueidis.Commands { // rueidis recycles a command once sent
			cmds := make(rueidis.Commands, 0, len(fs))
			for _, f := range fs {
				pos, _ := b.engine.Held(f.name)
				from := "0"
				if pos.Epoch != "" {
					from = strconv.FormatUint(pos.Seq+1, 10)
				}
				cmds = append(cmds, b.readLua.cmd(b.rc, []string{metaKey(f.name), streamKey(f.name)}, epoch, ttl, pos.Epoch, from))
			}
			return cmds
		}
		b.stats.Reads.Add(1)
		b.stats.ReadTopics.Add(uint64(len(fs)))
		ctx, cancel := context.WithTimeout(b.ctx, b.cfg.Timeout)
		res := b.rc.DoMulti(ctx, build()...)
		if len(res) > 0 && isNoScript(res[0].Error()) {
			if err := b.loadScripts(ctx); err == nil {
				res = b.rc.DoMulti(ctx, build()...)
			} else {
				err = b.unavailable("reloading the scripts", err)
				for i := range res {
					res[i] = rueidis.NewErrorResult(err)
				}
			}
		}
		cancel()
		for i, f := range fs {
			b.applyRead(f, res[i])
		}
	}
}

// applyRead gives one topic's read to the engine, then what came on its
// channel meanwhile, and answers its waiters.
func (b *Broker) applyRead(f *follow, r rueidis.RedisResult) {
	var st topic.State
	m, err := r.ToMessage()
	if err == nil {
		st, err = parseRead(f.name, m)
	}
	if err == nil {
		b.ok()
		err = b.engine.Hold(f.name, st)
	} else {
		err = b.fail(err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.follows[f.name] != f {
		return
	}
	if err != nil {
		if !f.loaded {
			b.drop(f, err)
			return
		}
		// A repair that failed: the topic stays held (its subscribers
		// keep what they have) and is read again shortly; whoever waits
		// for it hears why now.
		f.settle(err)
		time.AfterFunc(repairRetry, func() {
			b.mu.Lock()
			if b.follows[f.name] == f && f.state == reading {
				b.toRead[f.name] = f
				signal(b.rdKick)
			}
			b.mu.Unlock()
		})
		return
	}
	first := !f.loaded
	f.loaded = true
	for {
		held, over := f.held, f.over
		f.held, f.over = nil, false
		if over {
			b.reread(f)
			return
		}
		if len(held) == 0 {
			break
		}
		b.mu.Unlock()
		gap := false
		for _, p := range held {
			if b.engine.Apply(p) == topic.Gap {
				gap = true
				break
			}
		}
		b.mu.Lock()
		if b.follows[f.name] != f {
			return
		}
		if gap {
			b.reread(f)
			return
		}
	}
	if first {
		f.idle = time.Now() // let go after Linger unless a subscriber comes
	}
	b.setState(f, live)
	f.settle(nil)
}

// repairRetry is how long a topic whose repair read failed waits before
// it is read again.
const repairRetry = 250 * time.Millisecond

// reread reads a followed topic again (a gap, another epoch). b.mu is held.
func (b *Broker) reread(f *follow) {
	b.stats.Gaps.Add(1)
	if f.state == live {
		b.setState(f, reading)
	}
	b.toRead[f.name] = f
	signal(b.rdKick)
}

// onMessage handles a publication from a channel. Publications of one
// channel come in order, from the goroutine of its connection.
func (b *Broker) onMessage(name, msg string) {
	p, err := parseMessage(name, msg)
	if err != nil {
		b.log.Warn("dropped a malformed message", "topic", name, "err", err)
		return
	}
	b.stats.Received.Add(1)
	if v, ok := b.live.Load(name); ok {
		// The common case, without the broker's lock: a publication of a
		// topic held live goes straight to the engine.
		if b.engine.Apply(p) == topic.Gap {
			b.gap(v.(*follow), p)
		}
		return
	}
	b.mu.Lock()
	f := b.follows[name]
	switch {
	case f == nil:
		b.mu.Unlock()
		return
	case f.state != live:
		f.hold(p)
		b.mu.Unlock()
		return
	}
	b.mu.Unlock()
	if b.engine.Apply(p) == topic.Gap {
		b.gap(f, p)
	}
}

// gap keeps a publication that does not continue its topic and has the
// topic read again (or, when a read is under way, keeps it for after it).
func (b *Broker) gap(f *follow, p *topic.Publication) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.follows[f.name] != f:
	case f.state == live:
		f.held = append(f.held, p)
		b.reread(f)
	default:
		f.hold(p)
	}
}

// hold keeps a publication that came while the topic is read, at most
// maxHeld of them: past that it drops them and the read is repeated once
// it is done. b.mu is held.
func (f *follow) hold(p *topic.Publication) {
	if len(f.held) >= maxHeld {
		f.held, f.over = nil, true
	} else if !f.over {
		f.held = append(f.held, p)
	}
}

// setState moves a follow to state s. b.mu is held.
func (b *Broker) setState(f *follow, s followState) {
	f.state = s
	if s == live {
		b.live.Store(f.name, f)
	} else {
		b.live.CompareAndDelete(f.name, f)
	}
}

// forget removes a follow from the table. b.mu is held.
func (b *Broker) forget(f *follow) {
	delete(b.follows, f.name)
	delete(b.toRead, f.name)
	b.live.CompareAndDelete(f.name, f)
}

// letGo releases the topics idle for longer than Linger and unsubscribes
// their channels.
func (b *Broker) letGo(now time.Time) {
	b.mu.Lock()
	var idle []*follow
	for _, f := range b.follows {
		if f.state == live && !f.idle.IsZero() && now.Sub(f.idle) >= b.cfg.Linger {
			idle = append(idle, f)
		}
	}
	b.mu.Unlock()
	for _, f := range idle {
		released := b.engine.Release(f.name)
		b.mu.Lock()
		if b.follows[f.name] == f {
			switch {
			case released && len(f.waiters) > 0:
				// Followed again while it was let go: read it afresh,
				// its channel still subscribed.
				f.loaded = false
				b.setState(f, reading)
				b.toRead[f.name] = f
				signal(b.rdKick)
			case released:
				b.forget(f)
				b.toUnsub[f.name] = struct{}{}
				signal(b.subKick)
			default:
				f.idle = time.Time{}
			}
		}
		b.mu.Unlock()
	}
}

// Following returns how many topics the broker follows.
func (b *Broker) Following() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.follows)
}
