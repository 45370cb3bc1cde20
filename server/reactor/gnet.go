package reactor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// Gnet serves the WebSocket and TCP connections on gnet event loops
// (Options.Loops of them). Each gnet loop is paired with one of the
// server's loops the first time it opens a connection.
//
// The listeners are the reactor's own, each with an accepting goroutine
// that hands every accepted socket to gnet (Client.EnrollContext), rather
// than gnet's: gnet's acceptor stops the whole engine on the first accept
// error it does not expect, and running out of file descriptors (EMFILE)
// then dropped every client and closed both ports for good. Here it is a
// pause: /readyz fails, the connection at the head of the backlog is
// accepted with a spare descriptor and closed, and accepting resumes.
type Gnet struct {
	gnet.BuiltinEventEngine
	h    Handler
	opt  Options
	down DownState // why it is not serving, if it is not

	cli       *gnet.Client
	ws, tcp   *net.TCPListener
	stopping  atomic.Bool
	spare     sparedFD
	enrolling chan struct{} // hand-overs to gnet in flight (enroll)

	mu     sync.Mutex
	paired map[gnet.EventLoop]*pairing
}

// pairing is a gnet event loop's server loop, and its busy poll when
// Options.BusyPoll asks for one.
type pairing struct {
	l    Loop
	spin *spinner
}

// NewGnet returns the gnet engine of h.
func NewGnet(h Handler, opt Options) *Gnet {
	return &Gnet{h: h, opt: opt, paired: make(map[gnet.EventLoop]*pairing), enrolling: make(chan struct{}, maxEnrolling)}
}

// start binds the listeners, starts the event loops and the acceptors.
func (r *Gnet) Start(wg *sync.WaitGroup) error {
	cfg := r.opt
	var err error
	if r.ws, err = ListenTCP("websocket", cfg.WSAddr); err != nil {
		return fmt.Errorf("reactor: %w", err)
	}
	if r.tcp, err = ListenTCP("tcp", cfg.TCPAddr); err != nil {
		_ = r.ws.Close()
		return fmt.Errorf("reactor: %w", err)
	}
	r.cli, err = gnet.NewClient(r,
		gnet.WithMulticore(true),
		gnet.WithNumEventLoop(cfg.Loops),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		// One read takes up to readBufferCap of a connection's input (the
		// buffer is the loop's, not the connection's): a producer's
		// publications are taken in faster than one turn fans them out,
		// so a loop that falls behind sees it (server loop.deliverPending)
		// instead of leaving the backlog in the producer's socket.
		gnet.WithReadBufferCap(readBufferCap),
		gnet.WithLogger(gnetLogger{r.h.Logger()}),
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
		kind Kind
	}{{r.ws, WebSocket}, {r.tcp, TCP}} {
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
func (r *Gnet) accept(ln *net.TCPListener, kind Kind) {
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
				r.down.Clear()
				r.h.Logger().Info("accepting again", "listener", kind.String())
			}
			continue
		case r.stopping.Load() || errors.Is(err, net.ErrClosed):
			return
		case errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE):
			r.h.Count(AcceptFailed)
			if backoff == 0 {
				r.h.Logger().Warn("out of file descriptors: accepting paused", "listener", kind.String(), "err", err)
			}
			r.down.Set(fmt.Errorf("%s listener: out of file descriptors", kind))
			r.spare.shed(ln)
		default:
			r.h.Count(AcceptFailed)
			r.h.Logger().Warn("accept", "listener", kind.String(), "err", err)
		}
		backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
		time.Sleep(backoff)
	}
}

// readBufferCap is the most one read of a connection takes (gnet's
// default is 64 KiB).
const readBufferCap = 1 << 20

// maxEnrolling bounds the accepted sockets being handed to gnet at once.
const maxEnrolling = 64

// enroll hands an accepted socket to a gnet loop. gnet's hand-over waits
// until the loop has registered the socket, which a busy loop does
// between its turns: a goroutine per hand-over (at most maxEnrolling at
// once; the acceptor waits for a place) keeps a reconnecting herd from
// queueing one loop turn per connection. The goroutine ends with the
// hand-over; the connection has none of its own.
func (r *Gnet) enroll(nc *net.TCPConn, kind Kind) {
	r.enrolling <- struct{}{}
	go func() {
		defer func() { <-r.enrolling }()
		if _, err := r.cli.EnrollContext(nc, kind); err != nil { // dups the socket and closes nc
			r.h.Count(AcceptFailed)
			if !r.stopping.Load() {
				r.h.Logger().Warn("handing a connection to gnet", "listener", kind.String(), "err", err)
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

// Addrs are the bound WebSocket and TCP addresses.
func (r *Gnet) Addrs() (ws, tcp net.Addr) { return r.ws.Addr(), r.tcp.Addr() }

// stop closes the listeners, then the event loops with every connection.
func (r *Gnet) Stop(context.Context) error {
	if r.cli == nil || r.stopping.Swap(true) {
		return nil
	}
	_, _ = r.ws.Close(), r.tcp.Close()
	for range maxEnrolling { // the hand-overs in flight end while the loops run
		r.enrolling <- struct{}{}
	}
	err := r.cli.Stop()
	r.mu.Lock()
	for _, p := range r.paired {
		if p.spin != nil {
			p.spin.close()
		}
	}
	r.mu.Unlock()
	r.spare.mu.Lock()
	if r.spare.fd >= 0 {
		_ = unix.Close(r.spare.fd)
		r.spare.fd = -1
	}
	r.spare.mu.Unlock()
	return err
}

// pair returns the server loop of a gnet event loop.
func (r *Gnet) pair(el gnet.EventLoop) *pairing {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.paired[el]; ok {
		return p
	}
	loops := r.h.Loops()
	p := &pairing{l: loops[len(r.paired)%len(loops)]}
	if r.opt.BusyPoll > 0 {
		sp, err := newSpinner(r.opt.BusyPoll)
		if err != nil {
			r.h.Logger().Warn("busy poll off for an event loop", "err", err)
		} else {
			p.spin = sp
		}
	}
	run := gnetRun{p} // one per loop
	p.l.SetWake(func() { _ = el.Execute(context.Background(), run) })
	r.paired[el] = p
	return p
}

func (r *Gnet) OnOpen(gc gnet.Conn) ([]byte, gnet.Action) {
	if r.h.Draining() {
		return nil, gnet.Close // a draining node takes no new clients
	}
	kind, _ := gc.Context().(Kind) // the acceptor's listener
	p := r.pair(gc.EventLoop())
	if p.spin != nil {
		p.spin.add(gc.Fd())
	}
	gc.SetContext(gnetSession{r.h.Open(gnetConn{gc}, p.l, kind, gc.RemoteAddr()), p})
	return nil, gnet.None
}

func (r *Gnet) OnTraffic(gc gnet.Conn) gnet.Action {
	s := gc.Context().(gnetSession)
	if s.InputPaused() {
		s.l.Enter()
		s.Unread(gc.InboundBuffered())
		s.l.Leave()
		return gnet.None
	}
	buf, _ := gc.Peek(-1)
	s.l.Enter()
	// gnet's Discard(0) drops the whole buffer: keep a partial frame.
	if n := s.Data(buf); n > 0 {
		_, _ = gc.Discard(n)
	}
	s.l.Leave()
	if s.spin != nil {
		s.spin.spin(s.l)
	}
	return gnet.None
}

func (r *Gnet) OnClose(gc gnet.Conn, _ error) gnet.Action {
	if s, ok := gc.Context().(gnetSession); ok {
		if s.spin != nil {
			s.spin.remove(gc.Fd())
		}
		s.Closed()
	}
	return gnet.None
}

// gnetConn is a connection's transport on gnet.
type gnetConn struct{ gnet.Conn }

// CloseWrite shuts the socket's write side; gnet's write buffer is empty
// (conn.shutdown waits for that), so nothing of ours is cut off.
func (g gnetConn) CloseWrite() error { return CloseWrite(g.Fd()) }

// WakeInput has gnet call OnTraffic with the input it holds.
func (g gnetConn) WakeInput() { _ = g.Wake(nil) }

// gnetLogger sends gnet's own logs to the server's logger.
type gnetLogger struct{ log *slog.Logger }

func (g gnetLogger) Debugf(f string, a ...any) {
	g.log.Debug(strings.TrimSpace(fmt.Sprintf(f, a...)))
}
func (g gnetLogger) Infof(f string, a ...any) { g.log.Debug(strings.TrimSpace(fmt.Sprintf(f, a...))) }
func (g gnetLogger) Warnf(f string, a ...any) { g.log.Warn(strings.TrimSpace(fmt.Sprintf(f, a...))) }
func (g gnetLogger) Errorf(f string, a ...any) {
	g.log.Error(strings.TrimSpace(fmt.Sprintf(f, a...)))
}
func (g gnetLogger) Fatalf(f string, a ...any) {
	g.log.Error(strings.TrimSpace(fmt.Sprintf(f, a...)))
}

// ServingErr reports whether the listeners accept and the loops run.
func (r *Gnet) ServingErr() error { return r.down.Err() }

// gnetSession is what a gnet connection's context holds.
type gnetSession struct {
	Session
	*pairing // shared by the loop's connections: a session stays three words
}

// gnetRun is the task a wake has gnet run on the loop.
type gnetRun struct{ *pairing }

func (g gnetRun) Run(context.Context) error {
	g.l.RunPending()
	if g.spin != nil {
		g.spin.spin(g.l)
	}
	return nil
}
