package redisbroker

import (
	"context"
	"fmt"
	"hash/maphash"
	"strconv"
	"sync"

	"github.com/redis/rueidis"
	"github.com/tickfan/tickfan/topic"
)

// Publish implements topic.Broker: the requests are placed by the
// publishing goroutines, each topic's in order, and Publish waits for all.
// Publications of different topics are placed independently: on error
// some may have been placed.
func (b *Broker) Publish(ctx context.Context, reqs []topic.PublishRequest) ([]topic.Position, error) {
	pos := make([]topic.Position, len(reqs))
	for i, r := range reqs {
		if err := topic.ValidName(r.Topic); err != nil {
			return nil, fmt.Errorf("publication %d: %w", i, err)
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	wg.Add(len(reqs))
	qs := make([]pubReq, len(reqs))
	for i, r := range reqs {
		qs[i] = pubReq{r: r, done: func(p topic.Position, err error) {
			mu.Lock()
			pos[i] = p
			if err != nil && first == nil {
				first = fmt.Errorf("publication %d: %w", i, err)
			}
			mu.Unlock()
			wg.Done()
		}}
	}
	b.enqueue(qs...)
	wg.Wait()
	if first != nil {
		return nil, first
	}
	return pos, nil
}

// PublishAsync places one publication and calls done with its position,
// from another goroutine. It never blocks: a full queue (maxQueue)
// answers topic.ErrUnavailable at once.
func (b *Broker) PublishAsync(r topic.PublishRequest, done func(topic.Position, error)) {
	b.enqueue(pubReq{r: r, done: done})
}

// pubShardOf is the index of a topic's publishing goroutine.
func (b *Broker) pubShardOf(name string) uint64 { return maphash.String(b.seed, name) % Shards }

// maxQueue bounds the publications waiting for a publishing goroutine.
const maxQueue = 1 << 16

// enqueue queues publications for their publishing goroutines; those of
// one shard are queued together, so a batch goes out in one pipeline per
// shard. A full queue refuses what does not fit (topic.ErrUnavailable).
func (b *Broker) enqueue(qs ...pubReq) {
	if b.closed.Load() {
		for _, q := range qs {
			q.done(topic.Position{}, fmt.Errorf("%w: the broker is closed", topic.ErrUnavailable))
		}
		return
	}
	if len(qs) == 1 {
		b.enqueueShard(&b.pubs[b.pubShardOf(qs[0].r.Topic)], qs)
		return
	}
	var by [Shards][]pubReq
	for _, q := range qs {
		i := b.pubShardOf(q.r.Topic)
		by[i] = append(by[i], q)
	}
	for i := range by {
		if len(by[i]) > 0 {
			b.enqueueShard(&b.pubs[i], by[i])
		}
	}
}

func (b *Broker) enqueueShard(s *pubShard, qs []pubReq) {
	s.mu.Lock()
	room := max(maxQueue-len(s.q), 0)
	took := qs[:min(len(qs), room)]
	s.q = append(s.q, took...)
	s.mu.Unlock()
	for _, q := range qs[len(took):] {
		q.done(topic.Position{}, fmt.Errorf("%w: %d publications wait for redis", topic.ErrUnavailable, maxQueue))
	}
	if len(took) > 0 {
		signal(s.kick)
	}
}

// publisher places the queued publications of one shard, a pipeline at a
// time.
func (b *Broker) publisher(s *pubShard) {
	var batch []pubReq
	cmds := make(rueidis.Commands, 0, 64)
	for {
		select {
		case <-b.ctx.Done():
			s.mu.Lock()
			batch, s.q = s.q, nil
			s.mu.Unlock()
			for _, q := range batch {
				q.done(topic.Position{}, fmt.Errorf("%w: the broker is closed", topic.ErrUnavailable))
			}
			return
		case <-s.kick:
		}
		for {
			s.mu.Lock()
			n := min(len(s.q), maxBatch)
			batch = append(batch[:0], s.q[:n]...)
			rest := copy(s.q, s.q[n:])
			clear(s.q[rest:])
			s.q = s.q[:rest]
			s.mu.Unlock()
			if n == 0 {
				break
			}
			b.place(batch, cmds[:0])
			clear(batch)
		}
	}
}

// place runs one pipeline of publications and answers each.
func (b *Broker) place(batch []pubReq, cmds rueidis.Commands) {
	epoch := topic.NewEpoch()
	pubMode, maxlen := "", strconv.Itoa(max(b.cfg.HistorySize, 0))
	if b.cluster {
		pubMode = "s"
	}
	build := func() rueidis.Commands {
		cmds = cmds[:0]
		for _, q := range batch {
			watch := ""
			if q.watch {
				watch = "1"
			}
			cmds = append(cmds, b.pubLua.cmd(b.rc, []string{metaKey(q.r.Topic), streamKey(q.r.Topic)},
				channelOf(q.r.Topic), string(q.r.Data), flags(q.r.Snap, q.r.DataMsgpack), maxlen, epoch, pubMode, watch))
		}
		return cmds
	}
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.Timeout)
	defer cancel()
	b.stats.Pipelines.Add(1)
	res := b.rc.DoMulti(ctx, build()...)
	var reloadErr error
	if len(res) > 0 && isNoScript(res[0].Error()) {
		// Redis lost its scripts (a restart, SCRIPT FLUSH): load them and
		// try once more. A NOSCRIPT ran nothing.
		if reloadErr = b.loadScripts(ctx); reloadErr == nil {
			res = b.rc.DoMulti(ctx, build()...)
		} else {
			reloadErr = b.unavailable("reloading the scripts", reloadErr)
		}
	}
	for i, q := range batch {
		if reloadErr != nil {
			q.done(topic.Position{}, reloadErr)
			continue
		}
		pos, err := placed(res[i])
		switch {
		case err != nil:
			err = b.fail(err)
		case pos.Seq == 0:
			b.ok()
			b.stats.Refused.Add(1)
		default:
			b.ok()
			b.stats.Published.Add(1)
		}
		q.done(pos, err)
	}
}

// placed decodes publishLua's reply; seq 0 means a watched snapshot equal
// to the stored one was refused.
func placed(r rueidis.RedisResult) (topic.Position, error) {
	arr, err := r.ToArray()
	if err != nil {
		return topic.Position{}, err
	}
	if len(arr) != 2 {
		return topic.Position{}, fmt.Errorf("publish: %d fields in the reply", len(arr))
	}
	e, err := arr[0].ToString()
	if err != nil {
		return topic.Position{}, err
	}
	s, err := arr[1].AsInt64()
	if err != nil {
		return topic.Position{}, err
	}
	return topic.Position{Epoch: e, Seq: uint64(max(s, 0))}, nil
}
