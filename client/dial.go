package client

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"github.com/gobwas/ws"
)

// Config says how to reach a server. The zero value of each field but
// Addr means its default.
type Config struct {
	// Proto is the transport; default ws-json.
	Proto Proto
	// Addr is a ws:// URL (with its path, e.g. ws://127.0.0.1:8080/ws)
	// for WebSocket, host:port for TCP.
	Addr string
	// DialTimeout bounds the dial and the WebSocket handshake; default 10 s.
	DialTimeout time.Duration
	// RcvBuf, when set, is the socket's receive buffer in bytes, set before
	// it connects so that TCP's window scale agrees with it; default the
	// system's.
	RcvBuf int
}

// DefaultDialTimeout is Config.DialTimeout when it is zero.
const DefaultDialTimeout = 10 * time.Second

// Dial connects to the server and, over WebSocket, does the opening
// handshake offering cfg.Proto's subprotocol. Any goroutine may call it.
func Dial(ctx context.Context, cfg Config) (*Conn, error) {
	nc, br, err := dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	c := NewConn(nc, cfg.proto())
	if br != nil {
		// Bytes the handshake read past the 101: the start of the stream.
		n := br.Buffered()
		c.rbuf = append(c.rbuf, make([]byte, n)...)
		_, _ = br.Read(c.rbuf[:n])
		ws.PutReader(br)
	}
	return c, nil
}

// DialNet is Dial for callers that read and write the socket themselves
// (an event loop): it returns the connection once the handshake is done.
// The server speaks only when spoken to, so nothing may follow its 101;
// DialNet fails if something does. Any goroutine may call it.
func DialNet(ctx context.Context, cfg Config) (net.Conn, error) {
	nc, br, err := dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if br != nil {
		early := make([]byte, br.Buffered())
		_, _ = br.Read(early)
		ws.PutReader(br)
		nc.Close()
		return nil, fmt.Errorf("websocket %s: the server sent data right after the handshake%s", cfg.Addr, earlyClose(early, cfg.proto().Msgpack()))
	}
	return nc, nil
}

// earlyClose explains what a server sent right after its 101: a
// connection refused after the upgrade (4006: too many connections, or
// too many from this address or at this rate) gets op close and a close
// frame. It returns ": closed with <code> <reason>", or "" when the bytes
// say nothing of the kind.
func earlyClose(b []byte, mp bool) string {
	for len(b) > 0 {
		fr, n, err := ParseWSFrame(b)
		if err != nil || n == 0 {
			return ""
		}
		b = b[n:]
		switch fr.Op {
		case ws.OpText, ws.OpBinary:
			if m, err := Decode(fr.Payload, mp); err == nil && m.Kind == KindClose {
				return fmt.Sprintf(": closed with %d %s", m.Code, m.Reason)
			}
		case ws.OpClose:
			if len(fr.Payload) >= 2 {
				return fmt.Sprintf(": closed with %d %s", binary.BigEndian.Uint16(fr.Payload), fr.Payload[2:])
			}
		}
	}
	return ""
}

func (cfg Config) proto() Proto {
	if cfg.Proto == "" {
		return WSJSON
	}
	return cfg.Proto
}

func dial(ctx context.Context, cfg Config) (net.Conn, *bufio.Reader, error) {
	proto := cfg.proto()
	if _, err := ParseProto(string(proto)); err != nil {
		return nil, nil, err
	}
	timeout := cfg.DialTimeout
	if timeout <= 0 {
		timeout = DefaultDialTimeout
	}
	nd := net.Dialer{Timeout: timeout}
	if cfg.RcvBuf > 0 {
		nd.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, cfg.RcvBuf)
			})
			return errors.Join(err, serr)
		}
	}
	if !proto.WebSocket() {
		c, err := nd.DialContext(ctx, "tcp", cfg.Addr)
		if err != nil {
			return nil, nil, dialError("tcp", cfg.Addr, err)
		}
		return c, nil, nil
	}
	d := ws.Dialer{Protocols: []string{proto.Subprotocol()}, Timeout: timeout, NetDial: nd.DialContext}
	c, br, hs, err := d.Dial(ctx, cfg.Addr)
	if err != nil {
		return nil, nil, dialError("websocket", cfg.Addr, err)
	}
	if hs.Protocol != proto.Subprotocol() && proto == WSMsgpack {
		// Without it the server would read our msgpack as JSON.
		if br != nil {
			ws.PutReader(br)
		}
		c.Close()
		return nil, nil, fmt.Errorf("websocket %s: the server did not accept subprotocol %s (got %q)", cfg.Addr, proto.Subprotocol(), hs.Protocol)
	}
	return c, br, nil
}

// dialError explains the usual reasons a dial fails.
func dialError(kind, addr string, err error) error {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("server not reachable: %s %s refused the connection (is `tickfan serve` running there?)", kind, addr)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return fmt.Errorf("%s %s: no local port left (%w): too many connections in TIME_WAIT; wait a minute or use fewer connections", kind, addr, err)
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return fmt.Errorf("%s %s: out of file descriptors (%w): raise the open-file limit", kind, addr, err)
	}
	return fmt.Errorf("%s %s: %w", kind, addr, err)
}
