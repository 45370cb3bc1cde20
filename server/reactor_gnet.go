package server

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/panjf2000/gnet/v2"
	"github.com/panjf2000/gnet/v2/pkg/logging"
	"golang.org/x/sys/unix"
)

// gnetReactor runs the WebSocket and TCP listeners on one gnet engine with
// Config.Loops event loops. Each gnet loop is paired with one of the
// server's loops the first time it opens a connection.
type gnetReactor struct {
	down downState // why it is not serving, if it is not
	gnet.BuiltinEventEngine
	srv *Server

	eng     gnet.Engine
	booted  chan struct{}
	wsAddr  net.Addr
	tcpAddr net.Addr

	mu     sync.Mutex
	paired map[gnet.EventLoop]*loop
}

func newGnetReactor(s *Server) *gnetReactor {
	return &gnetReactor{srv: s, booted: make(chan struct{}), paired: make(map[gnet.EventLoop]*loop)}
}

// start runs the engine and waits until its listeners are bound.
func (r *gnetReactor) start(wg *sync.WaitGroup) error {
	cfg := r.srv.cfg
	addrs := []string{"tcp://" + cfg.WSAddr, "tcp://" + r.tcpListenAddr()}
	errc := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		errc <- gnet.Rotate(r, addrs,
			gnet.WithMulticore(true),
			gnet.WithNumEventLoop(cfg.Loops),
			gnet.WithTCPNoDelay(gnet.TCPNoDelay),
			// A restart binds at once although connections of the old
			// process linger in TIME_WAIT.
			gnet.WithReuseAddr(true),
			gnet.WithLogger(gnetLogger{r.srv}),
			gnet.WithLogLevel(logging.WarnLevel),
		)
	}()
	select {
	case <-r.booted:
		return nil
	case err := <-errc:
		for _, a := range [][2]string{{"websocket", cfg.WSAddr}, {"tcp", cfg.TCPAddr}} {
			if lerr := checkListen(a[0], a[1]); lerr != nil {
				return fmt.Errorf("reactor: %w", lerr)
			}
		}
		return fmt.Errorf("reactor: listen on %s and %s: %w", cfg.WSAddr, cfg.TCPAddr, err)
	}
}

func (r *gnetReactor) addrs() (ws, tcp net.Addr) { return r.wsAddr, r.tcpAddr }

func (r *gnetReactor) stop(ctx context.Context) error {
	select {
	case <-r.booted:
		return r.eng.Stop(ctx)
	default:
		return nil
	}
}

// OnBoot learns the bound addresses (a port of 0 in the config picks one).
func (r *gnetReactor) OnBoot(eng gnet.Engine) gnet.Action {
	r.eng = eng
	var err error
	if r.wsAddr, err = boundAddr(eng, r.srv.cfg.WSAddr); err != nil {
		r.srv.log.Error("websocket listener address", "err", err)
		return gnet.Shutdown
	}
	if r.tcpAddr, err = boundAddr(eng, r.tcpListenAddr()); err != nil {
		r.srv.log.Error("tcp listener address", "err", err)
		return gnet.Shutdown
	}
	close(r.booted)
	return gnet.None
}

// tcpListenAddr is the TCP listener's address as given to gnet. gnet finds
// a listener by its address string, so when both listeners ask for the same
// host with port 0 (the OS picks each port) the TCP one is spelt with port
// "00": the same port 0 to the resolver, a different string to gnet.
func (r *gnetReactor) tcpListenAddr() string {
	cfg := r.srv.cfg
	if cfg.TCPAddr == cfg.WSAddr && strings.HasSuffix(cfg.TCPAddr, ":0") {
		return cfg.TCPAddr + "0"
	}
	return cfg.TCPAddr
}

// boundAddr returns the address the listener for addr is bound to.
func boundAddr(eng gnet.Engine, addr string) (net.Addr, error) {
	fd, err := eng.DupListener("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dup listener %s: %w", addr, err)
	}
	defer unix.Close(fd)
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return nil, fmt.Errorf("getsockname %s: %w", addr, err)
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(sa.Addr[:]), Port: sa.Port}, nil
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(sa.Addr[:]), Port: sa.Port}, nil
	}
	return nil, fmt.Errorf("listener %s: unexpected address %T", addr, sa)
}

// pair returns the server loop of a gnet event loop.
func (r *gnetReactor) pair(el gnet.EventLoop) *loop {
	r.mu.Lock()
	defer r.mu.Unlock()
	if l, ok := r.paired[el]; ok {
		return l
	}
	l := r.srv.loops[len(r.paired)%len(r.srv.loops)]
	l.wake = func() { _ = el.Execute(context.Background(), l) }
	r.paired[el] = l
	return l
}

func (r *gnetReactor) OnOpen(gc gnet.Conn) ([]byte, gnet.Action) {
	if r.srv.draining.Load() {
		return nil, gnet.Close // a draining node takes no new clients
	}
	kind := kindWS
	if localPort(gc) == r.tcpAddr.(*net.TCPAddr).Port {
		kind = kindTCP
	}
	c := r.srv.openConn(gnetConn{gc}, r.pair(gc.EventLoop()), kind, gc.RemoteAddr())
	gc.SetContext(c)
	return nil, gnet.None
}

// localPort is the port the connection was accepted on. gnet's LocalAddr is
// the listener's address as configured (port 0 when the OS picked), so ask
// the socket.
func localPort(gc gnet.Conn) int {
	sa, err := unix.Getsockname(gc.Fd())
	if err != nil {
		return -1
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return sa.Port
	case *unix.SockaddrInet6:
		return sa.Port
	}
	return -1
}

func (r *gnetReactor) OnTraffic(gc gnet.Conn) gnet.Action {
	c := gc.Context().(*conn)
	buf, _ := gc.Peek(-1)
	c.l.enter()
	// gnet's Discard(0) drops the whole buffer: keep a partial frame.
	if n := c.traffic(buf); n > 0 {
		_, _ = gc.Discard(n)
	}
	c.l.leave()
	return gnet.None
}

func (r *gnetReactor) OnClose(gc gnet.Conn, _ error) gnet.Action {
	if c, ok := gc.Context().(*conn); ok {
		c.closed()
	}
	return gnet.None
}

// gnetConn is a connection's transport on gnet.
type gnetConn struct{ gnet.Conn }

// CloseWrite shuts the socket's write side; gnet's write buffer is empty
// (conn.shutdown waits for that), so nothing of ours is cut off.
func (g gnetConn) CloseWrite() error { return closeWrite(g.Fd()) }

// WakeInput has gnet call OnTraffic with the input it holds.
func (g gnetConn) WakeInput() { _ = g.Wake(nil) }

// gnetLogger sends gnet's own logs to the server's logger.
type gnetLogger struct{ s *Server }

func (g gnetLogger) Debugf(f string, a ...any) {
	g.s.log.Debug(strings.TrimSpace(fmt.Sprintf(f, a...)))
}
func (g gnetLogger) Infof(f string, a ...any) { g.s.log.Info(strings.TrimSpace(fmt.Sprintf(f, a...))) }
func (g gnetLogger) Warnf(f string, a ...any) { g.s.log.Warn(strings.TrimSpace(fmt.Sprintf(f, a...))) }
func (g gnetLogger) Errorf(f string, a ...any) {
	g.s.log.Error(strings.TrimSpace(fmt.Sprintf(f, a...)))
}
func (g gnetLogger) Fatalf(f string, a ...any) {
	g.s.log.Error(strings.TrimSpace(fmt.Sprintf(f, a...)))
}

// servingErr reports whether the listeners accept and the loops run.
func (r *gnetReactor) servingErr() error { return r.down.err() }
