// Package server is one tickfan node: the per-loop fan-out, the connection
// state machine (handshake, commands, subscriptions, outbox, deadlines),
// limits, the HTTP API, metrics and configuration. The network engines
// serve it through the contract of package reactor; it holds no business
// rules of topics (sequence, history and recovery belong to package topic)
// and reaches no engine's internals.
//
// Files, by stage of the data path: node (start, drain, shutdown),
// engines (the server as its engine sees it), inbox (what reaches a loop
// from other goroutines, bounded), loop (turn, subscriber index, frame
// cache, writes), conn (state, lifecycle), wsread (handshake, frames,
// fragments), inbound (input budget, backpressure), close (codes, the
// close exchange), commands, subscribe, publish, subscription (deliver,
// catch-up, resume), outbox (the bounded queue, the write), marks (the
// high- and low-water marks, --queue-memory), deadline (the connection's
// wheel timer), limits, http, httplisten, metrics, config and configcheck.
//
// Goroutines: each loop owns its connections, its subscriber index and
// their outboxes; nothing of them is touched from another goroutine. Other
// goroutines (HTTP publish, the wheel, token checks, the std engine's
// readers) reach a loop only through its inbox (loop.Enqueue, expire, Post),
// which wakes the loop once per batch.
//
// Locks, in the order they may be taken: topic.Topic.mu, then loop.mu (the
// inbox; a leaf). ipLimits.mu, the HTTP listener's and the engines' own
// locks are leaves taken alone. None is held across I/O.
package server
