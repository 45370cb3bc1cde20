// Package codec owns the message model of PROTOCOL.md and its bytes on the
// wire:
//
//   - the one command decoder, written once over a field reader with a
//     JSON and a msgpack implementation (Decode, Command);
//   - the replies and control messages the server sends (AppendError,
//     AppendSubReply, AppendReset, ...), in JSON and msgpack;
//   - payloads: what a "d" may be and its conversion between JSON and
//     msgpack (ValidJSON, ValidMsgpack, JSONToMsgpack, MsgpackToJSON);
//   - the encode-once frame cache of a publication (Frame), shared by every
//     subscriber of every loop;
//   - the TCP length framing (ReadTCPFrame) and the WebSocket frame and
//     handshake helpers on github.com/gobwas/ws (ReadWSFrame, Handshake);
//   - the close codes as typed values (Disconnect) and the error codes of
//     replies (Error).
//
// The JSON scanner and the msgpack wire primitives it stands on are in
// codec/internal/jsonscan and codec/internal/mpack.
//
// codec must not block or do I/O: every function works on byte slices the
// caller read or will write, so the event loops call it directly. Nor does
// it hold the server's rules (permissions, limits, when to close): it says
// what bytes mean, takes the limits it checks as arguments, and leaves the
// decisions to the server. Everything here is
// safe for concurrent use, except that one Command must not be decoded
// into by two goroutines at once; Frame may be called by many loops at
// once for the same publication.
package codec
