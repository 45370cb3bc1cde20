// Package redisbroker is the topic.Broker that several tickfan nodes share
// through Redis: a single redis-server or a Redis Cluster.
//
// # Keys and channels
//
// A topic T keeps, all under the hash tag {T} so that a cluster holds them
// in one slot:
//
//   - tf:{T}, a hash: e (the epoch), s (the last seq), and the latest
//     snapshot: ss (its seq), sd (its data), sf (its flags);
//   - tf:{T}:h, the history: a stream capped at the history size, one
//     entry per publication with the ID <seq>-0 and the fields f (flags)
//     and d (data);
//   - the channel tf:{T}, on which every publication goes out (PUBLISH,
//     or SPUBLISH on a cluster) as "epoch\nseq\nflags\ndata". Flags are
//     "s" for a snapshot and "m" for msgpack data.
//
// One Lua script (EVALSHA, loaded once and again on NOSCRIPT) publishes:
// it increments s, appends to the stream, stores the snapshot and
// publishes, so every node sees one order per topic. The epoch is made when
// the topic's hash does not exist: a topic whose keys were lost (flushed,
// evicted, a restart without persistence) starts a new epoch and its old
// stream is dropped. A node that follows a topic nobody has published to
// creates the hash at seq 0 with an expiry of PlaceholderTTL, so that its
// subscribers learn the epoch the first publication will carry; the first
// publication makes it permanent.
//
// # Following
//
// A node follows a topic while it has local subscribers: it subscribes to
// the channel, then reads the hash and the whole stream with a second
// script and gives them to the topic engine (topic.Engine in Held mode),
// whose history ring then serves sub, recovery and pull locally. Reads are
// coalesced (one read per topic however many clients asked, the reads of
// different topics in one pipeline), and so are SUBSCRIBE and UNSUBSCRIBE.
// A publication arriving with a seq gap, or another epoch, is held while
// the topic is read again from its stream; nothing is passed on with a
// hole. A topic is let go Linger after its last local subscriber left.
//
// # Outages
//
// Publishing fails with topic.ErrUnavailable while Redis cannot be reached.
// The subscription connections are watched: a disconnection, or a probe
// published to the node's own probe channel that does not come back in
// time, rebuilds them and reads every followed topic again from the seq
// the node holds, so its clients continue, or get reset and the snapshot
// when the range is gone. Ready reports why the broker cannot serve.
//
// # Locks and goroutines
//
// Broker.mu guards the follow table and the queues, but not the receive
// path: a publication of a topic held live is found through a concurrent
// index (Broker.live) and goes to the engine under its topic's lock only.
// Broker.mu is a leaf: the
// engine (whose topic locks call Idle) is never called with it held, and
// Idle takes it under a topic lock. Publications are placed by Shards
// goroutines (a topic always by the same one, so its publications keep
// their order); a subscriber goroutine batches SUBSCRIBE and UNSUBSCRIBE;
// a reader goroutine batches reads; each subscription connection has a
// goroutine that rebuilds it; one goroutine probes, lets idle topics go
// and reads watched keys.
package redisbroker
