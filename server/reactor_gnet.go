package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/panjf2000/gnet/v2/pkg/logging"
	"golang.org/x/sys/unix"
)

// gnetReactor serves the WebSocket and TCP connections on gnet event
// loops (Config.Loops of them). Each gnet loop is paired with one of the
// server's loops the first time it opens a connection.
//
// The listeners are the reactor's own, each with an accepting goroutine
// that hands every accepted socket to gnet (Client.EnrollContext), rather
// than gnet's: gnet's acceptor stops the whole engine on the first accept
// error it does not expect, and running out of file descriptors (EMFILE)
// then dropped every client and closed both ports for good. Here it is a
// pause: /readyz fails, the connection at the head of the backlog is
// accepted with a spare descriptor and closed, and accepting resumes.
type gnetReactor struct {
	gnet.BuiltinEventEngine
	srv  *Server
	down downState // why it is not serving, if it is not

	cli       *gnet.Client
	ws, tcp   *net.TCPListener
	stopping  atomic.Bool
	spare     sparedFD
	enrolling chan struct{} // hand-overs to gnet in flight (enroll)

	mu     sync.Mutex
	paired map[gnet.EventLoop]*loop
}

func newGnetReactor(s *Server) *gnetReactor {
	return &gnetReactor{srv: s, paired: make(map[gnet.EventLoop]*loop), enrolling: make(chan struct{}, maxEnrolling)}
}

// start binds the listeners, starts the event loops and the acceptors.
func (r *gnetReactor) start(wg *sync.WaitGroup) error {
	cfg := r.srv.cfg
	var err error
	// Go's listeners set SO_REUSEADDR: a restart binds at once although
	// connections of the old process linger in TIME_WAIT.
	if r.ws, err = listenTCP("websocket", cfg.WSAddr); err != nil {
		return fmt.Errorf("reactor: %w", err)
	}
	if r.tcp, err = listenTCP("tcp", cfg.TCPAddr); err != nil {
		_ = r.ws.Close()
		return fmt.Errorf("reactor: %w", err)
	}
	r.cli, err = gnet.NewClient(r,
		gnet.WithMulticore(true),
		gnet.WithNumEventLoop(cfg.Loops),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		gnet.WithLogger(gnetLogger{r.srv}),
		gnet.WithLogLevel(logging.WarnLevel),
	)
	if err == nil {
		err = r.cli.Start()
	}
	if err != nil {
		_, _ = r.ws.Close(), r.tcp.Close()
		return fmt.Errorf("reactor: gnet: %w", err)
	}
	r.spare.take()
	for _, a := range []struct {
		ln   *net.TCPListener
		kind connKind
	}{{r.ws, kindWS}, {r.tcp, kindTCP}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.accept(a.ln, a.kind)
		}()
	}
	return nil
}

// accept hands each connection of ln to gnet until the reactor stops.
// Running out of descriptors pauses it (backing off to a second) and sheds
// the connection at the head of the backlog, so that clients are told at
// once instead of waiting in the backlog; /readyz says why meanwhile.
func (r *gnetReactor) accept(ln *net.TCPListener, kind connKind) {
	var backoff time.Duration
	for {
		nc, err := ln.AcceptTCP()
		if err == nil {
			r.enroll(nc, kind)
		}
		switch {
		case err == nil:
			if backoff > 0 {
				backoff = 0
				r.down.clear()
				r.srv.log.Info("accepting again", "listener", kind.String())
			}
			continue
		case r.stopping.Load() || errors.Is(err, net.ErrClosed):
			return
		case errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE):
			r.srv.metrics.acceptErrors.Inc()
			if backoff == 0 {
				r.srv.log.Warn("out of file descriptors: accepting paused", "listener", kind.String(), "err", err)
			}
			r.down.set(fmt.Errorf("%s listener: out of file descriptors", kind))
			r.spare.shed(ln)
		default:
			r.srv.metrics.acceptErrors.Inc()
			r.srv.log.Warn("accept", "listener", kind.String(), "err", err)
		}
		backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
		time.Sleep(backoff)
	}
}

// maxEnrolling bounds the accepted sockets being handed to gnet at once.
const maxEnrolling = 64

// enroll hands an accepted socket to a gnet loop. gnet's hand-over waits
// until the loop has registered the socket, which a busy loop does
// between its turns: a goroutine per hand-over (at most maxEnrolling at
// once; the acceptor waits for a place) keeps a reconnecting herd from
// queueing one loop turn per connection. The goroutine ends with the
// hand-over; the connection has none of its own.
func (r *gnetReactor) enroll(nc *net.TCPConn, kind connKind) {
	r.enrolling <- struct{}{}
	go func() {
		defer func() { <-r.enrolling }()
		if _, err := r.cli.EnrollContext(nc, kind); err != nil { // dups the socket and closes nc
			r.srv.metrics.acceptErrors.Inc()
			if !r.stopping.Load() {
				r.srv.log.Warn("handing a connection to gnet", "listener", kind.String(), "err", err)
			}
		}
	}()
}

// sparedFD is a descriptor held in reserve: with the process out of
// descriptors, giving it up lets the acceptor take the next connection
// and close it, then take the reserve back.
type sparedFD struct {
	mu sync.Mutex
	fd int
}

func (s *sparedFD) take() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
		s.fd = fd
	} else {
		s.fd = -1
	}
}

func (s *sparedFD) shed(ln *net.TCPListener) {
	s.mu.Lock()
	if s.fd >= 0 {
		_ = unix.Close(s.fd)
		s.fd = -1
	}
	s.mu.Unlock()
	_ = ln.SetDeadline(time.Now().Add(time.Millisecond))
	if nc, err := ln.Accept(); err == nil {
		_ = nc.Close()
	}
	_ = ln.SetDeadline(time.Time{})
	s.take()
}

func (r *gnetReactor) addrs() (ws, tcp net.Addr) { return r.ws.Addr(), r.tcp.Addr() }

// stop closes the listeners, then the event loops with every connection.
func (r *gnetReactor) stop(context.Context) error {
	if r.cli == nil || r.stopping.Swap(true) {
		return nil
	}
	_, _ = r.ws.Close(), r.tcp.Close()
	for range maxEnrolling { // the hand-overs in flight end while the loops run
		r.enrolling <- struct{}{}
	}
	err := r.cli.Stop()
	r.spare.mu.Lock()
	if r.spare.fd >= 0 {
		_ = unix.Close(r.spare.fd)
		r.spare.fd = -1
	}
	r.spare.mu.Unlock()
	return err
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
	kind, _ := gc.Context().(connKind) // the acceptor's listener
	c := r.srv.openConn(gnetConn{gc}, r.pair(gc.EventLoop()), kind, gc.RemoteAddr())
	gc.SetContext(c)
	return nil, gnet.None
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
func (g gnetLogger) Infof(f string, a ...any) { g.s.log.Debug(strings.TrimSpace(fmt.Sprintf(f, a...))) }
func (g gnetLogger) Warnf(f string, a ...any) { g.s.log.Warn(strings.TrimSpace(fmt.Sprintf(f, a...))) }
func (g gnetLogger) Errorf(f string, a ...any) {
	g.s.log.Error(strings.TrimSpace(fmt.Sprintf(f, a...)))
}
func (g gnetLogger) Fatalf(f string, a ...any) {
	g.s.log.Error(strings.TrimSpace(fmt.Sprintf(f, a...)))
}

// servingErr reports whether the listeners accept and the loops run.
func (r *gnetReactor) servingErr() error { return r.down.err() }
