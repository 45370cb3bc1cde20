// Package topic owns topics: the name rules, each topic's epoch and sequence,
// its history ring and latest snapshot, the recovery rules of PROTOCOL.md
// ("Subscribe and recovery"), and the Broker that gives publications their
// place (the in-memory broker here, Redis in topic/redisbroker).
//
// It knows nothing of sockets or codecs. It tells the server which event
// loops need a publication through the Sink interface and leaves the
// delivery to them.
//
// A topic exists once it is published to. A subscriber of a topic never
// published to waits in a small index of per-loop counts that is freed when
// its last subscriber leaves, so subscribers alone never hold topics.
//
// Locks: each Topic has its own mutex; the Sink is called with it held, so a
// Sink takes only its own short per-loop locks (lock order: topic, then loop).
// The waiting index is split in parts, each with its own mutex, taken only by
// subscribers of names never published and by a topic's first publication;
// no topic's mutex is taken with it held. No lock is shared by all topics on
// the publish path.
package topic
