// Package e2e holds the end-to-end tests of tickfan: each test starts the
// real server in-process on ports the OS picks and talks to it only as an
// independent client would, over WebSocket (gorilla/websocket, JSON and
// msgpack subprotocols), raw TCP with msgpack frames, raw sockets for the
// WebSocket edge cases, and net/http. The tests hold the server to
// PROTOCOL.md; they never import the server's codec.
package e2e
