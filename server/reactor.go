package server

import (
	"context"
	"fmt"
	"net"
	"sync"

	"golang.org/x/sys/unix"
)

// Engines: the reactors a server can run on (Config.Engine).
const (
	// EngineGnet is gnet's epoll event loops (the default).
	EngineGnet = "gnet"
	// EngineEvio is evio's epoll event loops.
	EngineEvio = "evio"
	// EngineStd is the standard library: net/http with gorilla/websocket and
	// a reading and a writing goroutine per connection, on Go's netpoller.
	EngineStd = "std"
)

// Engines lists the valid values of Config.Engine.
var Engines = []string{EngineGnet, EngineEvio, EngineStd}

// reactor owns the WebSocket and TCP listeners and the sockets of their
// connections. Every engine feeds the same connection state machine (conn)
// on the server's loops: bytes in through conn.onData (or whole WebSocket
// messages through conn.message), bytes out through a transport.
type reactor interface {
	// start binds the listeners and serves; it returns once they are bound.
	start(wg *sync.WaitGroup) error
	// stop closes the listeners and every connection.
	stop(ctx context.Context) error
	// addrs are the bound WebSocket and TCP addresses.
	addrs() (ws, tcp net.Addr)
	// servingErr is nil while every listener accepts and every loop runs, or
	// says what is not serving (/readyz answers 503 with it).
	servingErr() error
}

// newReactor builds the reactor of s.cfg.Engine, which New has checked.
func newReactor(s *Server) reactor {
	switch s.cfg.Engine {
	case EngineEvio:
		return newEvioReactor(s)
	case EngineStd:
		return newStdReactor(s)
	}
	return newGnetReactor(s)
}

// listenTCP binds a listener, naming it and its address in an error.
func listenTCP(what, addr string) (*net.TCPListener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s listener: %w", what, err)
	}
	return ln.(*net.TCPListener), nil
}

// checkListen reports, naming the address, why a listener could not bind
// there; evio reports a failed bind without the address.
func checkListen(what, addr string) error {
	ln, err := listenTCP(what, addr)
	if err != nil {
		return err
	}
	return ln.Close()
}

// closeWrite shuts the write side of a gnet connection's socket (gnet has
// no call for it; the descriptor is the connection's own, and this runs on
// its loop).
func closeWrite(fd int) error { return unix.Shutdown(fd, unix.SHUT_WR) }

// openConn sets up a connection a reactor accepted on loop l, and applies
// the connection limits. A WebSocket connection starts in its handshake.
func (s *Server) openConn(t transport, l *loop, kind connKind, remote net.Addr) *conn {
	c := newConn(t, l, kind)
	if kind == kindTCP {
		s.metrics.conns(kindTCP).Inc()
	}
	if ta, ok := remote.(*net.TCPAddr); ok {
		c.ip = ta.AddrPort().Addr().Unmap()
	}
	s.admit(c)
	return c
}

// traffic hands bytes read from the socket to the connection, writes what
// they caused and returns how many bytes were used; the reactor keeps the
// rest (a partial frame) until more arrives. Loop goroutine only.
func (c *conn) traffic(buf []byte) int {
	now := c.l.srv.wheel.NowNano()
	if len(buf) > 0 {
		c.lastSeen = now // any inbound byte is life
	}
	n := c.onData(buf)
	c.holdInput(len(buf)-n, n, now)
	c.l.flush()
	return n
}

// downState records why a reactor stopped serving, for /readyz. Any
// goroutine may call its methods.
type downState struct {
	mu     sync.Mutex
	reason error
}

// set records that something stopped serving; clear that it serves again.
func (d *downState) set(err error) { d.mu.Lock(); d.reason = err; d.mu.Unlock() }
func (d *downState) clear()        { d.set(nil) }

func (d *downState) err() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.reason
}
