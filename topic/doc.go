// Package topic owns topics: the name and pattern rules, each topic's epoch
// and sequence, its history ring and latest snapshot, conflation, the
// recovery rules of PROTOCOL.md ("Subscribe and recovery"), and the Broker
// interface that gives publications their place, with the in-memory broker
// of a single node. A broker shared between nodes (Redis) belongs in a
// subpackage.
//
// It must not know about sockets or codecs. It tells the server which event
// loops need a publication through the Sink interface and leaves the
// delivery to them; a Publication's Frames cache holds encoded frames
// without knowing their format.
//
// A topic exists once it is published to. A subscriber of a topic never
// published to waits in a small index of per-loop counts that is freed when
// its last subscriber leaves, so subscribers alone never hold topics.
//
// # Locks
//
// Every lock of the package, and what may be held with it:
//
//   - Topic.mu, one per topic, guards its seq, epoch, history, snapshot and
//     subscriber counts. Publish calls Sink.Enqueue with it held, so the
//     one order is Topic.mu, then the Sink's own lock (the server's per-loop
//     inbox mutex): Enqueue must not block and must not call the Engine.
//     No two Topic.mu are held at once; a batch publishes one topic after
//     another.
//   - waitPart.mu, one for each of the 64 parts of the waiting index (a
//     name's part is a hash of it), is taken alone: by Subscribe and
//     Unsubscribe of a name not published to, which let it go before they
//     take a Topic.mu, and by the first publication of a name while it
//     creates the topic, whose mutex nobody holds yet.
//   - Frames.mu, one per publication, is held only while Frames.Get has
//     the codec's encode function fill a slot: encode must take no lock of
//     this package, and the Engine never takes Frames.mu.
//
// The topic index is a sync.Map and the topic count an atomic, so no lock
// is shared by all topics on the publish path.
package topic
