package client

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/gobwas/ws"

	"github.com/tickfan/tickfan/codec"
)

// Conn is one connection to a server.
//
// Next, and so everything read, belongs to one goroutine at a time (the
// reader). The methods that send (Subscribe, Unsubscribe, Publish, Ping,
// Auth, Refresh, Keepalive, Write) may be called from any goroutine, at
// the same time as Next: writes are serialised by a mutex, and Next
// writes its pongs under the same mutex. SetDeadline, SetReadDeadline,
// SetWriteDeadline, Close, Proto and NetConn may be called from any
// goroutine.
//
// Conn does not choose request ids, match replies to commands or recover
// subscriptions: the caller does, from what Next returns.
type Conn struct {
	nc    net.Conn
	proto Proto
	mp    bool

	wmu  sync.Mutex
	wbuf []byte // guarded by wmu

	// Owned by the reader.
	rbuf []byte // bytes read: rbuf[r:] not yet parsed
	r    int
	frag []byte // the fragments so far of a fragmented WebSocket message
	idle time.Duration
}

// readChunk is the least room Next reads into.
const readChunk = 64 << 10

// NewConn wraps a connection that is already open and, over WebSocket,
// past its handshake (see DialNet). The Conn owns nc from then on.
func NewConn(nc net.Conn, p Proto) *Conn {
	return &Conn{nc: nc, proto: p, mp: p.Msgpack()}
}

// Proto is the connection's transport. Any goroutine may call it.
func (c *Conn) Proto() Proto { return c.proto }

// NetConn is the underlying connection, for socket options. Any goroutine
// may call it; reading or writing it directly bypasses Conn.
func (c *Conn) NetConn() net.Conn { return c.nc }

// Subscribe sends sub with request id; since (may be nil) holds, per
// topic, the last publication the caller has of it. Any goroutine may
// call it.
func (c *Conn) Subscribe(id uint64, topics []string, since map[string]Position) error {
	return c.send(func(b []byte) []byte { return c.proto.AppendSub(b, id, topics, since) })
}

// Unsubscribe sends unsub with request id. Any goroutine may call it.
func (c *Conn) Unsubscribe(id uint64, topics []string) error {
	return c.send(func(b []byte) []byte { return c.proto.AppendUnsub(b, id, topics) })
}

// Publish sends pub with request id. data is one value in the
// connection's encoding: JSON for ws-json, msgpack otherwise. Any
// goroutine may call it.
func (c *Conn) Publish(id uint64, topic string, data []byte, snap bool) error {
	if c.mp && !codec.ValidMsgpack(data) || !c.mp && !json.Valid(data) {
		return fmt.Errorf("publish %s: the data is not one %s value", topic, map[bool]string{true: "msgpack", false: "JSON"}[c.mp])
	}
	return c.send(func(b []byte) []byte { return c.proto.AppendPub(b, id, topic, data, snap) })
}

// Ping sends the ping command with request id; it is answered {}. Any
// goroutine may call it.
func (c *Conn) Ping(id uint64) error {
	return c.send(func(b []byte) []byte { return c.proto.AppendPing(b, id) })
}

// Auth sends auth with request id and a JWT. Any goroutine may call it.
func (c *Conn) Auth(id uint64, token string) error {
	return c.send(func(b []byte) []byte { return c.proto.AppendAuth(b, id, token) })
}

// Refresh sends refresh with request id and a new JWT. Any goroutine may
// call it.
func (c *Conn) Refresh(id uint64, token string) error {
	return c.send(func(b []byte) []byte { return c.proto.AppendRefresh(b, id, token) })
}

// Keepalive sends {"op":"ping"} without id, an answer to a TCP heartbeat
// (a KindPing message) that wants no reply of its own. Any goroutine may
// call it.
func (c *Conn) Keepalive() error {
	return c.send(c.proto.AppendKeepalive)
}

// Write sends b, whole commands already framed for the connection's Proto
// (see the Proto.Append functions): a producer that builds its own frames
// sends many in one write. Any goroutine may call it.
func (c *Conn) Write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.nc.Write(b)
	return err
}

func (c *Conn) send(appendFrame func([]byte) []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf = appendFrame(c.wbuf[:0])
	_, err := c.nc.Write(c.wbuf)
	return err
}

// SetDeadline sets the read and write deadlines of the connection. Any
// goroutine may call it.
func (c *Conn) SetDeadline(t time.Time) error { return c.nc.SetDeadline(t) }

// SetReadDeadline sets the deadline of Next; a Next that times out may be
// called again, and goes on where it stopped. Any goroutine may call it
// (to stop a reader).
func (c *Conn) SetReadDeadline(t time.Time) error { return c.nc.SetReadDeadline(t) }

// SetWriteDeadline sets the deadline of the sends. Any goroutine may
// call it.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.nc.SetWriteDeadline(t) }

// Close closes the connection at once (no closing handshake); a Next
// blocked in another goroutine returns an error. Any goroutine may call it.
func (c *Conn) Close() error { return c.nc.Close() }

// CloseError is the WebSocket close frame of the server (RFC 6455 5.5.1),
// which Next returns after answering it. The server sends it after a
// KindClose message with the same code, or alone for a WebSocket protocol
// violation (1002, 1007, 1009).
//
// A Subscription also reports the {"op":"close"} message (KindClose) as a
// CloseError, over TCP too.
type CloseError struct {
	Code   int
	Reason string

	op bool // from {"op":"close"}, not a close frame
}

func (e *CloseError) Error() string {
	what := "the websocket"
	if e.op {
		what = "the connection"
	}
	return "server closed " + what + " with " + strconv.Itoa(e.Code) + " " + e.Reason
}

// Next reads the next message from the server. It answers WebSocket pings
// with pongs itself; it returns everything else, the TCP heartbeat
// (KindPing) included, which the caller may answer with Keepalive or
// Ping. A WebSocket close frame is answered with a close frame of the same
// code and returned as a *CloseError; the end of the stream is io.EOF.
// Only the reader goroutine may call Next.
func (c *Conn) Next() (Message, error) {
	body, err := c.NextBody()
	if err != nil {
		return Message{}, err
	}
	return Decode(body, c.mp)
}

// NextBody is Next without the decoding: it returns the next message's
// body (JSON or msgpack), which aliases the connection's buffer until the
// next call. Only the reader goroutine may call it.
func (c *Conn) NextBody() ([]byte, error) {
	for {
		fr, n, err := c.proto.ParseFrame(c.rbuf[c.r:])
		if err != nil {
			return nil, err
		}
		if n == 0 {
			if err := c.fill(); err != nil {
				return nil, err
			}
			continue
		}
		c.r += n
		switch fr.Op {
		case ws.OpText, ws.OpBinary:
			if fr.Fin {
				return fr.Payload, nil
			}
			c.frag = append(c.frag[:0], fr.Payload...)
		case ws.OpContinuation:
			c.frag = append(c.frag, fr.Payload...)
			if fr.Fin {
				return c.frag, nil
			}
		case ws.OpPing:
			if err := c.send(func(b []byte) []byte { return AppendPong(b, fr.Payload) }); err != nil {
				return nil, err
			}
		case ws.OpPong:
		case ws.OpClose:
			ce := &CloseError{Code: 1005} // no status code (RFC 6455 7.4.1)
			if len(fr.Payload) >= 2 {
				ce.Code = int(binary.BigEndian.Uint16(fr.Payload))
				ce.Reason = string(fr.Payload[2:])
			}
			// Echo the code; a frame without one is answered without one,
			// since 1005 must not be sent (RFC 6455 7.4.1).
			var echo []byte
			if len(fr.Payload) >= 2 {
				echo = fr.Payload[:2]
			}
			_ = c.send(func(b []byte) []byte { return AppendWSFrame(b, ws.OpClose, echo) })
			return nil, ce
		default:
			return nil, fmt.Errorf("unexpected frame opcode %d", fr.Op)
		}
	}
}

// SetIdleTimeout makes every read of the socket fail once the server has
// sent nothing at all for d (with an error for which
// errors.Is(err, os.ErrDeadlineExceeded)): unlike a deadline set before
// Next, the WebSocket pings that Next answers by itself count as life. 0
// turns it off. Only the reader goroutine may call it.
func (c *Conn) SetIdleTimeout(d time.Duration) {
	c.idle = d
	if d == 0 {
		_ = c.nc.SetReadDeadline(time.Time{})
	}
}

// Buffered reports whether a whole frame waits in the connection's
// buffer, so that the next Next starts without reading the socket: a
// reader that stops at some message can first take what it already has.
// Only the reader goroutine may call it.
func (c *Conn) Buffered() bool {
	_, n, err := c.proto.ParseFrame(c.rbuf[c.r:])
	return n > 0 || err != nil
}

// fill reads more of the stream after what is not parsed yet.
func (c *Conn) fill() error {
	if c.r > 0 {
		c.rbuf = c.rbuf[:copy(c.rbuf, c.rbuf[c.r:])]
		c.r = 0
	}
	if cap(c.rbuf)-len(c.rbuf) < readChunk {
		c.rbuf = append(c.rbuf, make([]byte, max(readChunk, len(c.rbuf)))...)[:len(c.rbuf)]
	}
	if c.idle > 0 {
		_ = c.nc.SetReadDeadline(time.Now().Add(c.idle))
	}
	n, err := c.nc.Read(c.rbuf[len(c.rbuf):cap(c.rbuf)])
	c.rbuf = c.rbuf[:len(c.rbuf)+n]
	if n > 0 {
		return nil // an error comes back on the next read
	}
	return err
}
