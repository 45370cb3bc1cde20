package redisbroker

import (
	"context"
	"encoding/json"
	"time"

	"github.com/redis/rueidis"
	"github.com/tickfan/tickfan/topic"
)

// watcher reads every watched key each WatchInterval, in one pipelined
// round trip (one MGET per slot on a cluster), and publishes the value of
// a key that changed as a snapshot of its topic. With several nodes each
// sees the change; the script refuses a snapshot equal to the stored one,
// so one publication is made per change.
func (b *Broker) watcher() {
	last := make(map[string]string, len(b.cfg.Watch))
	t := time.NewTicker(b.cfg.WatchInterval)
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
		}
		vals, err := b.readWatched()
		if err != nil {
			_ = b.fail(err)
			continue
		}
		b.ok()
		for _, w := range b.cfg.Watch {
			v, ok := vals[w.Key]
			b.mu.Lock()
			same := last[w.Key] == v
			last[w.Key] = v
			b.mu.Unlock()
			if !ok || same {
				continue
			}
			data := []byte(v)
			if !json.Valid(data) {
				data, _ = json.Marshal(v) // a plain value goes out as a JSON string
			}
			key := w.Key
			b.enqueue(pubReq{r: topic.PublishRequest{Topic: w.Topic, Data: data, Snap: true}, watch: true,
				done: func(_ topic.Position, err error) {
					if err != nil {
						b.log.Warn("publishing a watched key failed", "key", key, "err", err)
						b.mu.Lock()
						delete(last, key) // try again next time
						b.mu.Unlock()
					}
				}})
		}
	}
}

// readWatched returns the watched keys that exist and their values.
func (b *Broker) readWatched() (map[string]string, error) {
	groups := map[uint16][]string{}
	order := []uint16{}
	for _, w := range b.cfg.Watch {
		s := uint16(0)
		if b.cluster {
			s = slotOf(w.Key)
		}
		if _, ok := groups[s]; !ok {
			order = append(order, s)
		}
		groups[s] = append(groups[s], w.Key)
	}
	cmds := make(rueidis.Commands, 0, len(order))
	for _, s := range order {
		cmds = append(cmds, b.rc.B().Mget().Key(groups[s]...).Build())
	}
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.Timeout)
	defer cancel()
	vals := make(map[string]string, len(b.cfg.Watch))
	for i, r := range b.rc.DoMulti(ctx, cmds...) {
		arr, err := r.ToArray()
		if err != nil {
			return nil, err
		}
		for j, m := range arr {
			if v, err := m.ToString(); err == nil {
				vals[groups[order[i]][j]] = v
			}
		}
	}
	return vals, nil
}
