// Package server owns the reactor (gnet event loops), the per-connection
// state machine (WebSocket handshake, session, outbox), the per-loop fan-out,
// the HTTP admin API, metrics and configuration. It holds no business rules
// of topics: sequence, history and recovery belong to package topic.
//
// Goroutines: each event loop owns its connections, its subscriber index and
// their outboxes; nothing of them is touched from another goroutine. Other
// goroutines (HTTP publish, the demo feed) reach a loop only through its
// inbox (loop.Enqueue), which wakes the loop once per batch.
//
// Locks, in the order they may be taken: topic.Topic.mu, then loop.mu (the
// inbox). Neither is held across I/O.
package server
