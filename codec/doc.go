// Package codec owns the message model of PROTOCOL.md: decoding client
// commands, encoding replies, control messages and publications in JSON and
// msgpack, the TCP length framing, the WebSocket frame helpers (on
// github.com/gobwas/ws) and the encode-once frame cache of a publication.
//
// codec must not block or do I/O: every function works on byte slices the
// caller read or will write, so the event loops can call it directly.
// Everything here is safe for concurrent use; Frame may be called by many
// loops at once for the same publication.
package codec
