package redisbroker

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/tickfan/tickfan/topic"
)

// slotRange is a range of cluster slots and the shard that serves them.
type slotRange struct {
	from, to uint16
	s        *shard
}

// slotOf is the cluster slot of a key or channel: CRC16 (XMODEM) of its
// hash tag, modulo 16384, as Redis Cluster computes it.
func slotOf(key string) uint16 {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc % 16384
}

// startShards makes the subscription connections: one on a single Redis,
// one per master on a cluster. It points every follow at its new shard
// before the connections are made, so each subscribes what it carries.
func (b *Broker) startShards() error {
	id := topic.NewEpoch()
	var shards []*shard
	var slots []slotRange
	if !b.cluster {
		shards = []*shard{b.newShard(b.cfg.Addrs[0], b.rc, "tf:probe:"+id)}
	} else {
		ranges, err := b.clusterSlots()
		if err != nil {
			return err
		}
		nodes := b.rc.Nodes()
		byAddr := map[string]*shard{}
		for _, r := range ranges {
			s := byAddr[r.addr]
			if s == nil {
				node := nodes[r.addr]
				if node == nil {
					return fmt.Errorf("redis cluster: master %s is not among the client's nodes", r.addr)
				}
				s = b.newShard(r.addr, node, "tf:probe:"+id+":{"+tagIn(r.from, r.to)+"}")
				byAddr[r.addr] = s
				shards = append(shards, s)
			}
			slots = append(slots, slotRange{from: r.from, to: r.to, s: s})
		}
	}
	b.mu.Lock()
	b.shards, b.slots = shards, slots
	b.mu.Unlock()
	for _, s := range shards {
		b.run(s.keep)
	}
	return nil
}

type addrRange struct {
	from, to uint16
	addr     string
}

// clusterSlots asks the cluster which master serves which slots.
func (b *Broker) clusterSlots() ([]addrRange, error) {
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.Timeout)
	defer cancel()
	arr, err := b.rc.Do(ctx, b.rc.B().ClusterSlots().Build()).ToArray()
	if err != nil {
		return nil, fmt.Errorf("redis cluster: CLUSTER SLOTS: %w", err)
	}
	var out []addrRange
	for _, e := range arr {
		f, err := e.ToArray()
		if err != nil || len(f) < 3 {
			return nil, fmt.Errorf("redis cluster: CLUSTER SLOTS: unexpected reply")
		}
		from, _ := f[0].AsInt64()
		to, _ := f[1].AsInt64()
		m, err := f[2].ToArray()
		if err != nil || len(m) < 2 {
			return nil, fmt.Errorf("redis cluster: CLUSTER SLOTS: unexpected master entry")
		}
		host, _ := m[0].ToString()
		port, _ := m[1].AsInt64()
		out = append(out, addrRange{from: uint16(from), to: uint16(to), addr: host + ":" + strconv.FormatInt(port, 10)})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("redis cluster: no slot is served")
	}
	return out, nil
}

// tagIn returns a hash tag whose slot lies in from..to.
func tagIn(from, to uint16) string {
	for i := 0; ; i++ {
		t := "p" + strconv.Itoa(i)
		if s := slotOf(t); s >= from && s <= to {
			return t
		}
	}
}

// shardOf returns the shard that carries the topic's channel.
func (b *Broker) shardOf(name string) *shard {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.shardOfLocked(name)
}

func (b *Broker) shardOfLocked(name string) *shard {
	if !b.cluster {
		return b.shards[0]
	}
	slot := slotOf(channelOf(name))
	for _, r := range b.slots {
		if slot >= r.from && slot <= r.to {
			return r.s
		}
	}
	return b.shards[0] // a slot nobody serves: its subscribe fails and is tried again
}

// remap makes the subscription connections again from the cluster's
// current slot map (a slot moved) and reads every followed topic again.
func (b *Broker) remap(why string) {
	if b.closed.Load() {
		return
	}
	b.remapMu.Lock()
	defer b.remapMu.Unlock()
	b.log.Warn("redis cluster: slots moved, making the subscription connections again", "why", why)
	b.mu.Lock()
	old := b.shards
	b.mu.Unlock()
	for _, s := range old {
		s.close()
	}
	if err := b.startShards(); err != nil {
		// The old connections stay closed and Ready says why; the next
		// sunsubscribe, or a restart, tries again.
		b.log.Error("redis cluster: remap failed", "err", err)
	}
}
