// Package evio is a tickfan engine on evio's epoll event loops
// (github.com/tidwall/evio), implementing the reactor contract to be
// measured against gnet.
package evio

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/tidwall/evio"
	"golang.org/x/sys/unix"

	"github.com/tickfan/tickfan/server/reactor"
)

// evioReactor runs the listeners on evio's epoll loops.
//
// evio writes a connection only with what that connection's own callback
// returns, and its wake of a connection replaces (not extends) the bytes
// it still holds for it. A fan-out loop has to write many connections from
// one callback, so this reactor writes a connection's socket itself
// (writev on its descriptor, on the loop that owns it) whenever evio holds
// nothing for it, and hands evio only what the socket did not take, in the
// connection's next callback, joined to whatever evio still holds. The
// descriptor, evio's pending bytes and the connection's loop are fields
// evio v1.0.8 does not export; they are found by name once (evioFields)
// and read on the owning loop only, where evio itself uses them.
type evioReactor struct {
	down reactor.DownState // why it is not serving, if it is not
	h    reactor.Handler
	opt  reactor.Options

	booted   chan struct{}
	ws, tcp  net.Addr
	stopping atomic.Bool
	served   chan struct{}

	mu     sync.Mutex
	paired map[unsafe.Pointer]*evioLoop
}

// evioLoop pairs one evio loop with one server loop. The server loop is
// woken by waking one of its connections (anchor): evio calls that
// connection's Data with no input, and the loop runs its work there.
type evioLoop struct {
	l      reactor.Loop
	anchor atomic.Pointer[evioConn]
	// conns are the loop's open connections, a list through evioConn.next,
	// for a new anchor when the anchor closes. Loop goroutine only.
	conns *evioConn
	// scratch joins evio's pending bytes and ours for a hand-over; evio
	// copies what a callback returns, so one buffer per loop serves.
	scratch []byte
}

// evioFields are the offsets of the unexported fields of evio's conn.
var evioFields struct {
	once          sync.Once
	fd, out, loop uintptr
	err           error
}

func evioOffsets(c evio.Conn) error {
	f := &evioFields
	f.once.Do(func() {
		t := reflect.TypeOf(c)
		if t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
			f.err = fmt.Errorf("evio connection of type %v: want a pointer to a struct", t)
			return
		}
		t = t.Elem()
		want := map[string]reflect.Kind{"fd": reflect.Int, "out": reflect.Slice, "loop": reflect.Pointer}
		for name, kind := range want {
			sf, ok := t.FieldByName(name)
			if !ok || sf.Type.Kind() != kind {
				f.err = fmt.Errorf("evio connection has no %s field of kind %v (evio version changed?)", name, kind)
				return
			}
			switch name {
			case "fd":
				f.fd = sf.Offset
			case "out":
				if sf.Type.Elem().Kind() != reflect.Uint8 {
					f.err = errors.New("evio connection's out is not a []byte")
					return
				}
				f.out = sf.Offset
			case "loop":
				f.loop = sf.Offset
			}
		}
	})
	return f.err
}

// New returns the evio engine of h.
func New(h reactor.Handler, opt reactor.Options) reactor.Engine {
	return &evioReactor{h: h, opt: opt, booted: make(chan struct{}), served: make(chan struct{}),
		paired: make(map[unsafe.Pointer]*evioLoop)}
}

// Addrs are the bound WebSocket and TCP addresses.
func (r *evioReactor) Addrs() (ws, tcp net.Addr) { return r.ws, r.tcp }

// Start binds the listeners and serves; it returns once evio has bound them.
func (r *evioReactor) Start(wg *sync.WaitGroup) error {
	cfg := r.opt
	ev := evio.Events{
		NumLoops:    cfg.Loops,
		LoadBalance: evio.RoundRobin,
		Serving:     r.serving,
		Opened:      r.opened,
		Data:        r.data,
		Closed:      r.closed,
		Tick:        r.tick,
	}
	errc := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(r.served)
		err := evio.Serve(ev, "tcp://"+cfg.WSAddr, "tcp://"+cfg.TCPAddr)
		select {
		case <-r.booted:
			if !r.stopping.Load() {
				// evio ends Serve on an accept error other than "try
				// again" (out of file descriptors) and closes every
				// connection: the node serves no client any more, and
				// /readyz must say so.
				if err == nil {
					err = errors.New("evio returned")
				}
				err = fmt.Errorf("evio engine stopped serving: %w", err)
				r.down.Set(err)
				r.h.Logger().Error("evio engine stopped: the node serves no WebSocket or TCP client until restarted", "err", err)
			}
		default:
		}
		errc <- err
	}()
	select {
	case <-r.booted:
		return nil
	case err := <-errc:
		if err == nil {
			err = errors.New("stopped at start")
		}
		for _, a := range [][2]string{{"websocket", cfg.WSAddr}, {"tcp", cfg.TCPAddr}} {
			if lerr := reactor.CheckListen(a[0], a[1]); lerr != nil {
				return fmt.Errorf("reactor: %w", lerr)
			}
		}
		return fmt.Errorf("reactor: evio: listen on %s and %s: %w", cfg.WSAddr, cfg.TCPAddr, err)
	}
}

// Stop has evio close its listeners and every connection, and waits for it.
func (r *evioReactor) Stop(ctx context.Context) error {
	select {
	case <-r.booted:
	default:
		return nil
	}
	r.stopping.Store(true)
	select {
	case <-r.served:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *evioReactor) serving(s evio.Server) evio.Action {
	r.ws, r.tcp = s.Addrs[0], s.Addrs[1]
	close(r.booted)
	return evio.None
}

// tick lets evio stop when asked; it runs on evio's first loop.
func (r *evioReactor) tick() (time.Duration, evio.Action) {
	if r.stopping.Load() {
		return 0, evio.Shutdown
	}
	return 20 * time.Millisecond, evio.None
}

// pair returns the server loop of an evio loop.
func (r *evioReactor) pair(key unsafe.Pointer) *evioLoop {
	r.mu.Lock()
	defer r.mu.Unlock()
	if el, ok := r.paired[key]; ok {
		return el
	}
	loops := r.h.Loops()
	el := &evioLoop{l: loops[len(r.paired)%len(loops)]}
	el.l.SetWake(func() {
		if a := el.anchor.Load(); a != nil {
			a.ec.Wake()
		}
	})
	r.paired[key] = el
	return el
}

func (r *evioReactor) opened(ec evio.Conn) ([]byte, evio.Options, evio.Action) {
	if r.h.Draining() {
		return nil, evio.Options{}, evio.Close // a draining node takes no new clients
	}
	if err := evioOffsets(ec); err != nil {
		r.h.Logger().Error("evio engine", "err", err)
		return nil, evio.Options{}, evio.Shutdown
	}
	p := reflect.ValueOf(ec).UnsafePointer()
	e := &evioConn{ec: ec,
		fd:   *(*int)(unsafe.Add(p, evioFields.fd)),
		held: (*[]byte)(unsafe.Add(p, evioFields.out)),
	}
	e.el = r.pair(*(*unsafe.Pointer)(unsafe.Add(p, evioFields.loop)))
	_ = unix.SetsockoptInt(e.fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	kind := reactor.WebSocket
	if ec.AddrIndex() == 1 {
		kind = reactor.TCP
	}
	e.s = r.h.Open(e, e.el.l, kind, ec.RemoteAddr()) // writes a refusal at once
	ec.SetContext(e)
	e.el.link(e)
	if e.el.anchor.Load() == nil {
		e.el.anchor.Store(e)
	}
	e.el.l.RunPending()
	return e.handOver(), evio.Options{ReuseInputBuffer: true}, e.action()
}

// data runs for input, and with none when a connection was woken: for its
// own bytes to hand over, to close it, or to run its loop's work.
func (r *evioReactor) data(ec evio.Conn, in []byte) ([]byte, evio.Action) {
	e, ok := ec.Context().(*evioConn)
	if !ok {
		return nil, evio.Close
	}
	if in == nil && e.wakeIn && !e.closeReq {
		e.wakeIn = false
		in = []byte{} // the input kept while the connection was over its budget
	}
	if in == nil {
		e.el.l.RunPending()
	} else if !e.closeReq {
		buf := in
		if len(e.in) > 0 {
			e.in = append(e.in, in...)
			buf = e.in
		}
		e.el.l.Enter()
		n := e.s.Data(buf)
		e.el.l.Leave()
		switch rest := buf[n:]; {
		case len(rest) == 0 && cap(e.in) > 4096:
			e.in = nil // a large frame has gone: give its room back
		case len(rest) == 0:
			e.in = e.in[:0]
		case len(e.in) > 0:
			e.in = e.in[:copy(e.in, rest)]
		default:
			e.in = append(e.in[:0], rest...) // evio reuses in
		}
	}
	return e.handOver(), e.action()
}

func (r *evioReactor) closed(ec evio.Conn, _ error) evio.Action {
	e, ok := ec.Context().(*evioConn)
	if !ok {
		return evio.None
	}
	e.gone = true
	e.el.unlink(e)
	e.s.Closed()
	if r.stopping.Load() {
		e.el.anchor.Store(nil) // evio is closing its loops: wake nothing more
		return evio.None
	}
	if e.el.anchor.Load() == e {
		e.el.anchor.Store(e.el.conns) // nil once the loop has none
	}
	e.el.l.RunPending()
	return evio.None
}

// evioConn is a connection's transport on evio.
type evioConn struct {
	ec   evio.Conn
	el   *evioLoop
	s    reactor.Session
	fd   int
	held *[]byte // evio's bytes still to write for this connection
	pend []byte  // bytes the socket did not take, not yet handed to evio
	in   []byte  // a partial frame kept between reads

	prev, next *evioConn // the loop's open connections (evioLoop.conns)

	closeReq bool // close once what is pending is written
	gone     bool // evio closed it
	wakeIn   bool // hand in to the connection again at the next wake
}

// Writev writes to the socket at once when nothing is pending before bs,
// and keeps the rest for evio to write when the socket is writable.
func (e *evioConn) Writev(bs [][]byte) (int, error) {
	if e.gone || e.closeReq {
		return 0, net.ErrClosed
	}
	total := 0
	for _, b := range bs {
		total += len(b)
	}
	written := 0
	if len(e.pend) == 0 && len(*e.held) == 0 {
		n, err := writev(e.fd, bs)
		if err != nil && !errors.Is(err, unix.EAGAIN) {
			_ = e.Close()
			return 0, err
		}
		written = max(n, 0)
	}
	for _, b := range bs {
		if written >= len(b) {
			written -= len(b)
			continue
		}
		e.pend = append(e.pend, b[written:]...)
		written = 0
	}
	if len(e.pend) > 0 {
		e.ec.Wake() // its callback hands the rest to evio
	}
	return total, nil
}

func (e *evioConn) Write(b []byte) (int, error) { return e.Writev([][]byte{b}) }

func (e *evioConn) OutboundBuffered() int { return len(e.pend) + len(*e.held) }

// CloseWrite shuts the socket's write side; nothing is pending (the session
// waits for that before it asks), and evio goes on reading until the client
// closes.
func (e *evioConn) CloseWrite() error {
	if e.gone || e.closeReq {
		return net.ErrClosed
	}
	return reactor.CloseWrite(e.fd)
}

// WakeInput has the connection's next callback hand its kept input in
// again. It may run inside data, before the input left unread there is
// kept in e.in: so it always wakes, and data looks then.
func (e *evioConn) WakeInput() {
	if !e.wakeIn && !e.gone && !e.closeReq {
		e.wakeIn = true
		e.ec.Wake()
	}
}

// Close asks evio to write what is pending and close.
func (e *evioConn) Close() error {
	if !e.closeReq && !e.gone {
		e.closeReq = true
		e.ec.Wake()
	}
	return nil
}

// handOver returns what a callback of this connection gives evio to
// write: evio replaces its pending bytes with it, so they lead.
func (e *evioConn) handOver() []byte {
	if len(e.pend) == 0 {
		return nil
	}
	out := append(append(e.el.scratch[:0], *e.held...), e.pend...)
	if cap(out) <= 64<<10 {
		e.el.scratch = out[:0]
	}
	if cap(e.pend) > 64<<10 {
		e.pend = nil
	} else {
		e.pend = e.pend[:0]
	}
	return out
}

func (e *evioConn) action() evio.Action {
	if e.closeReq {
		return evio.Close // evio writes what it holds first
	}
	return evio.None
}

// writev writes bs to fd in one system call.
func writev(fd int, bs [][]byte) (int, error) {
	if len(bs) == 1 {
		return unix.Write(fd, bs[0])
	}
	return unix.Writev(fd, bs)
}

// ServingErr reports whether the listeners accept and the loops run.
func (r *evioReactor) ServingErr() error { return r.down.Err() }

// link adds a connection evio opened on the loop to its list. Loop
// goroutine only.
func (el *evioLoop) link(e *evioConn) {
	e.next = el.conns
	if el.conns != nil {
		el.conns.prev = e
	}
	el.conns = e
}

// unlink removes a closed connection from the loop's list. Loop goroutine
// only.
func (el *evioLoop) unlink(e *evioConn) {
	switch {
	case e.prev != nil:
		e.prev.next = e.next
	case el.conns == e:
		el.conns = e.next
	default:
		return // not linked
	}
	if e.next != nil {
		e.next.prev = e.prev
	}
	e.prev, e.next = nil, nil
}
