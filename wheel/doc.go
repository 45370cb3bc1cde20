// Package wheel owns the hashed timing wheel behind the server's deadlines:
// heartbeats, idle, handshake, message, slow-client and token-expiry
// timeouts. It trades precision (one tick, 10 ms by default) for cheap
// timers: adding or stopping one is a hash, a short per-slot lock and a list
// link, with no allocation, and a million live timers cost nothing while
// they wait. It also keeps the coarse clock of the hot path (NowNano), so
// that nothing there reads the wall clock per message.
//
// It must not know about connections: a Timer carries a callback and
// nothing else, and its owner (a connection, a loop) finds itself from the
// Timer it embeds.
//
// Goroutines: each Wheel runs one goroutine that advances the clock and
// fires due timers. Callbacks run on it, one after another, so a callback
// must not block: it hands the work to an event loop.
//
// Locks: each slot has its own mutex (slot.mu), guarding the list of timers
// in that slot. At most one slot's mutex is held at a time, never two:
// moving a timer unlinks it under its old slot's mutex, lets it go, then
// links it under the new one. No mutex is held while a callback runs (the
// due timers are unlinked first), so a callback may Add or Stop timers.
package wheel
