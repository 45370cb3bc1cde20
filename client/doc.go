// Package client is the Go client of the tickfan wire protocol
// (docs/PROTOCOL.md): it dials a server over WebSocket (subprotocol
// tickfan.v1.json or tickfan.v1.msgpack) or raw TCP with msgpack, frames
// and encodes commands (sub, unsub, pub, ping, auth, refresh), splits
// what the server sends into frames and decodes its messages:
// publications, replies, lag, reset, ping and close. The CLI (tickfan sub) and the load
// generator (bench/) both speak the protocol through it.
//
// It works at three levels. Subscription is for applications: it holds
// topics across connections, reconnecting with backoff and jitter and
// resubscribing with since, so that each topic continues with exactly
// what was missed (Recovered) or is openly started anew (Reset); it
// repairs holes in the stream (unsub, then sub with since the last
// publication delivered), drops duplicates, drops a link on which the
// server has sent nothing for the idle timeout, answers heartbeats, and
// refreshes tokens before they expire. Its Next returns events (Pub,
// Subscribed, Recovered, Reset, Lag, Resumed, Connected, Disconnected)
// from a bounded queue. tickfan sub is built on it.
//
// Conn is a blocking connection for one reader goroutine: Next returns
// the server's messages one by one and answers WebSocket pings itself;
// it neither recovers nor reconnects, and leaves every message to its
// caller. For callers that read sockets their own way (the bench's event
// loops), the pieces Conn is built from are exported: DialNet,
// Proto.ParseFrame, ScanPublication (no allocation, for the hot path of
// publications), Decode (everything else) and the Proto.Append functions
// that frame commands.
//
// The functions and Proto methods work on byte slices only: they do no
// I/O and are safe for concurrent use. Each Conn and Subscription method
// says which goroutine may call it.
//
// client must not be imported by the server: it is the other side of the
// wire, so it parses frames itself (server frames are unmasked, client
// frames masked) rather than share the server's reader, and a bug on one
// side cannot hide the same bug on the other. It shares with the server
// only codec's model of a protocol error (codec.Error) and close codes,
// and topic's name and pattern rules.
package client
