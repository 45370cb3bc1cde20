// Package replay reads a pcap of a tickfan node's traffic (scripts/capture
// records one) and plays its publications and subscriptions again against
// a running server, at the captured pace or faster, optionally with every
// subscription (and publisher) multiplied, and reports what it found, what
// it sent, what the server acknowledged and delivered, and the latency
// from each publication to its receipt.
//
// Reading (Read) is pure Go: gopacket's pcapgo reader (pcap and pcapng),
// its layers and tcpassembly, no libpcap. Each TCP connection's client
// side is recognised by its content, not by port: tickfan TCP frames (a
// 4-byte big-endian length, then a msgpack map), HTTP/1.1 requests (POST
// /api/publish, a single publication or a batch), a WebSocket upgrade
// followed by masked client frames (JSON text or msgpack binary), and
// Redis RESP commands (PUBLISH and SPUBLISH). The server's side of each
// connection is counted, not parsed. What cannot be parsed is counted by
// reason and never guessed at.
//
// Replaying (Run) sends traffic only to the addresses in Config: the
// addresses in the capture are never dialed.
//
// replay is a tool of the bench: the server must not import it.
package replay
