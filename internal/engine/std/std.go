// Package std is a tickfan engine on the standard library: net/http and
// gorilla/websocket on Go's netpoller, implementing the reactor contract
// to be measured against gnet.
package std

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/gorilla/websocket"

	"github.com/tickfan/tickfan/codec"
	"github.com/tickfan/tickfan/server/reactor"
)

// stdReactor is the engine most Go servers start from: net/http and
// gorilla/websocket on Go's netpoller, with a goroutine reading and a
// goroutine writing each connection (gorilla writes one message per
// write call). It shares the protocol with the other engines: the reader
// hands each message (or, for TCP, the bytes read) to the session on its
// loop's goroutine and waits for it to be handled; the session's writes
// reach the writer through stdTransport.
// It exists to be measured against; gnet is the engine to run.
type stdReactor struct {
	down     reactor.DownState // why it is not serving, if it is not
	h        reactor.Handler
	opt      reactor.Options
	loops    []reactor.Loop
	wsLn     net.Listener
	tcpLn    net.Listener
	http     *http.Server
	upgrader websocket.Upgrader

	next    atomic.Uint64 // round-robin choice of loop
	opening sync.Map      // net.Conn -> time.Time: accepted, not yet upgraded

	mu       sync.Mutex
	stopping chan struct{} // closed by stop
	conns    map[*stdTransport]struct{}
	connWG   sync.WaitGroup // connections and the acceptors
	loopsEnd chan struct{}  // closed once every connection has gone
	loopWG   sync.WaitGroup // loop runners
}

// New returns the std engine of h.
func New(h reactor.Handler, opt reactor.Options) reactor.Engine {
	r := &stdReactor{h: h, opt: opt, stopping: make(chan struct{}), loopsEnd: make(chan struct{}),
		conns: make(map[*stdTransport]struct{})}
	r.upgrader = websocket.Upgrader{
		HandshakeTimeout: opt.HandshakeTimeout,
		CheckOrigin: func(req *http.Request) bool {
			origin := req.Header.Get("Origin")
			return origin == "" || h.AllowOrigin([]byte(origin))
		},
	}
	return r
}

// Addrs are the bound WebSocket and TCP addresses.
func (r *stdReactor) Addrs() (ws, tcp net.Addr) { return r.wsLn.Addr(), r.tcpLn.Addr() }

// Start binds the listeners, starts a goroutine per loop and serves.
func (r *stdReactor) Start(wg *sync.WaitGroup) error {
	cfg := r.opt
	wsLn, err := reactor.ListenTCP("websocket", cfg.WSAddr)
	if err != nil {
		return fmt.Errorf("reactor: %w", err)
	}
	tcpLn, err := reactor.ListenTCP("tcp", cfg.TCPAddr)
	if err != nil {
		_ = wsLn.Close()
		return fmt.Errorf("reactor: %w", err)
	}
	r.wsLn, r.tcpLn = drainingListener{wsLn, r.h, &r.down}, drainingListener{tcpLn, r.h, &r.down}
	r.loops = r.h.Loops()
	for _, l := range r.loops {
		r.runLoop(l)
	}
	r.http = &http.Server{Handler: http.HandlerFunc(r.serveWS), ReadHeaderTimeout: cfg.HandshakeTimeout,
		ConnState: r.connState}
	r.connWG.Add(2)
	go func() {
		defer r.connWG.Done()
		if err := r.http.Serve(r.wsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.h.Logger().Error("websocket listener stopped", "err", err)
		}
	}()
	go func() {
		defer r.connWG.Done()
		r.acceptTCP()
	}()
	wg.Add(1)
	go func() { // the loops serve until the last connection has gone
		defer wg.Done()
		<-r.stopping
		r.connWG.Wait()
		close(r.loopsEnd)
		r.loopWG.Wait()
	}()
	return nil
}

// runLoop drives loop l from a goroutine of its own: wakes run its
// pending work.
func (r *stdReactor) runLoop(l reactor.Loop) {
	wake := make(chan struct{}, 1)
	l.SetWake(func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	})
	r.loopWG.Add(1)
	go func() {
		defer r.loopWG.Done()
		for {
			select {
			case <-wake:
				l.RunPending()
			case <-r.loopsEnd:
				return
			}
		}
	}()
}

// onLoop runs fn on l's goroutine and waits until it has run.
func onLoop(l reactor.Loop, done chan struct{}, fn func()) {
	l.Post(func() {
		fn()
		done <- struct{}{}
	})
	<-done
}

// Stop closes the listeners and every connection; the loops stop once the
// connections have gone (the wait group of Start counts them).
func (r *stdReactor) Stop(context.Context) error {
	r.mu.Lock()
	select {
	case <-r.stopping:
		r.mu.Unlock()
		return nil
	default:
	}
	close(r.stopping)
	for t := range r.conns {
		_ = t.Close() // a reader paused by its budget gives up
		_ = t.nc.Close()
	}
	r.mu.Unlock()
	_ = r.tcpLn.Close()
	return r.http.Close() // the listener and unfinished upgrades; upgraded connections are ours
}

// drainingListener closes connections that arrive while the server drains.
type drainingListener struct {
	net.Listener
	h    reactor.Handler
	down *reactor.DownState // accept errors are told to /readyz (net/http retries them)
}

func (d drainingListener) Accept() (net.Conn, error) {
	for {
		nc, err := d.Listener.Accept()
		switch {
		case err != nil && !errors.Is(err, net.ErrClosed):
			d.h.Count(reactor.AcceptFailed)
			d.down.Set(fmt.Errorf("listener %s: %w", d.Addr(), err))
		case err == nil && d.down.Err() != nil:
			d.down.Clear()
		}
		if err != nil || !d.h.Draining() {
			return nc, err
		}
		_ = nc.Close()
	}
}

func (r *stdReactor) pick() reactor.Loop {
	return r.loops[int(r.next.Add(1)%uint64(len(r.loops)))]
}

// track counts a connection in (false once stopping) or out.
func (r *stdReactor) track(t *stdTransport, on bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !on {
		delete(r.conns, t)
		r.connWG.Done()
		return true
	}
	select {
	case <-r.stopping:
		return false
	default:
	}
	r.conns[t] = struct{}{}
	r.connWG.Add(1)
	return true
}

func (r *stdReactor) serveWS(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path != r.opt.WSPath {
		http.NotFound(w, req)
		return
	}
	// The first subprotocol offered that we speak, as PROTOCOL.md asks
	// (gorilla's own choice follows the server's order).
	var hdr http.Header
	format := codec.WSJSON
	for _, p := range websocket.Subprotocols(req) {
		if p == codec.SubprotocolJSON || p == codec.SubprotocolMsgpack {
			hdr = http.Header{"Sec-Websocket-Protocol": {p}}
			if p == codec.SubprotocolMsgpack {
				format = codec.WSMsgpack
			}
			break
		}
	}
	wc, err := r.upgrader.Upgrade(earlyData{w}, req, hdr) // gorilla answers a failed upgrade
	if err != nil {
		r.h.Count(reactor.HandshakeFailed)
		return
	}
	wc.SetReadLimit(int64(r.opt.AnonMaxFrame)) // readWS raises it once the client has a token
	t := newStdTransport(wc.NetConn(), wc)
	r.serve(t, reactor.WebSocket, format)
}

func (r *stdReactor) acceptTCP() {
	var backoff time.Duration
	for {
		nc, err := r.tcpLn.Accept()
		if err == nil {
			backoff = 0
			go r.serve(newStdTransport(nc, nil), reactor.TCP, 0)
			continue
		}
		select {
		case <-r.stopping:
			return
		default:
		}
		if errors.Is(err, net.ErrClosed) {
			return
		}
		// Out of descriptors, mostly: pause and go on, as net/http does
		// for the WebSocket listener (drainingListener counted it).
		if backoff == 0 {
			r.h.Logger().Warn("tcp accept failed: accepting paused", "err", err)
		}
		backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
		time.Sleep(backoff)
	}
}

// serve runs one connection: it is opened on a loop, written by its own
// goroutine and read by this one until either side ends it. A WebSocket
// connection is upgraded already, in format.
func (r *stdReactor) serve(t *stdTransport, kind reactor.Kind, format codec.Format) {
	if !r.track(t, true) {
		_ = t.nc.Close()
		return
	}
	defer r.track(t, false)
	l := r.pick()
	ack := make(chan struct{}, 1)
	var s reactor.Session
	var ms reactor.MessageSession
	onLoop(l, ack, func() {
		s = r.h.Open(t, l, kind, t.nc.RemoteAddr())
		t.release = func() {
			l.Post(func() {
				t.ended = true
				s.Closed()
			})
		}
		if kind == reactor.WebSocket {
			if ms, _ = s.(reactor.MessageSession); ms != nil {
				ms.Upgraded(format)
			}
		}
	})
	go t.writer()
	switch {
	case kind == reactor.TCP:
		r.readTCP(t, s, l, ack)
	case ms != nil:
		r.readWS(t, ms, l, ack)
	default: // gorilla frames the messages: the session must take them whole
		r.h.Logger().Error("std engine: a WebSocket session that takes no messages (reactor.MessageSession)")
	}
	// The reader stopped: the client closed, the close's time ran out, or
	// (WebSocket) gorilla refused a frame and sent its close itself. What
	// the client still sends is read and dropped until it closes its side,
	// within the read deadline Close sets, so that closing with unread
	// input does not reset the connection under the client's last reads.
	_ = t.Close()
	_, _ = io.Copy(io.Discard, t.nc)
	close(t.readDone)
	<-t.done
}

// readWS hands each WebSocket message to the session. gorilla answers
// protocol violations itself (1002, 1009); pings, pongs and close frames
// go through the session like any frame.
func (r *stdReactor) readWS(t *stdTransport, s reactor.MessageSession, l reactor.Loop, ack chan struct{}) {
	limit := r.opt.AnonMaxFrame
	// message hands one message to the session on its loop, again after
	// each WakeInput while the session is over its budget (it reads
	// nothing more meanwhile); false once the connection has closed.
	message := func(op ws.OpCode, msg []byte) bool {
		for handled := false; !handled; {
			onLoop(l, ack, func() {
				handled = t.ended || s.Message(op, msg) // after Closed, input is dropped
				if handled && !t.ended {
					limit = s.MaxMessage()
				}
			})
			if !handled && !t.waitInput() {
				return false
			}
		}
		return true
	}
	control := func(op ws.OpCode) func(string) error {
		return func(data string) error {
			if !message(op, []byte(data)) {
				return net.ErrClosed
			}
			return nil
		}
	}
	t.ws.SetPingHandler(control(ws.OpPing))
	t.ws.SetPongHandler(control(ws.OpPong))
	t.ws.SetCloseHandler(func(code int, text string) error {
		var payload []byte
		if code != websocket.CloseNoStatusReceived {
			payload = websocket.FormatCloseMessage(code, text)
		}
		return control(ws.OpClose)(string(payload))
	})
	for {
		typ, rd, err := t.ws.NextReader()
		if err != nil {
			return
		}
		// A message begun must be finished within --message-timeout (the
		// session bounds it itself on the other engines).
		t.readDeadline(time.Now().Add(r.opt.MessageTimeout))
		msg, err := io.ReadAll(rd)
		if err != nil {
			if isTimeout(err) {
				onLoop(l, ack, func() {
					if !t.ended {
						s.MessageTimedOut()
					}
				})
			}
			return
		}
		t.readDeadline(time.Time{})
		op := ws.OpText
		if typ == websocket.BinaryMessage {
			op = ws.OpBinary
		}
		if !message(op, msg) {
			return
		}
		t.ws.SetReadLimit(int64(limit)) // --max-frame once authenticated
	}
}

// readDeadline sets the socket's read deadline, unless the connection is
// closing: then the deadline of its close stands.
func (t *stdTransport) readDeadline(d time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.closing {
		_ = t.nc.SetReadDeadline(d)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// readTCP hands the bytes read to the session, keeping a partial frame
// for the next read.
func (r *stdReactor) readTCP(t *stdTransport, s reactor.Session, l reactor.Loop, ack chan struct{}) {
	buf := make([]byte, 4096)
	have := 0
	for {
		if have == len(buf) {
			buf = append(buf, make([]byte, len(buf))...)
		}
		n, err := t.nc.Read(buf[have:])
		if err != nil {
			return
		}
		have += n
		for {
			used, paused := 0, false
			onLoop(l, ack, func() {
				if !t.ended {
					used = s.Data(buf[:have])
					paused = s.InputPaused()
				}
			})
			have = copy(buf, buf[used:have])
			// Over its budget the session reads nothing more from the
			// socket until the client has read enough: TCP backpressure.
			if !paused {
				break
			}
			if !t.waitInput() {
				return
			}
		}
		if have == 0 && len(buf) > 4096 {
			buf = make([]byte, 4096) // a large frame has gone: give its room back
		}
	}
}

// stdTransport queues what the loop writes for the connection's writer
// goroutine, which writes it with gorilla (one message per write) or, for
// TCP, as it comes.
type stdTransport struct {
	nc       net.Conn
	ws       *websocket.Conn // nil for TCP
	wake     chan struct{}
	readDone chan struct{} // closed when the reader has stopped
	done     chan struct{} // closed when the writer has closed the socket
	// release tells the session, on its loop, that the connection has
	// closed (the socket may still linger for the client's last bytes);
	// set on open.
	release func()
	// ended is set, on the loop, with the call of Session.Closed: the
	// session takes no more calls. Loop goroutine only.
	ended bool

	buffered atomic.Int64  // bytes queued and not yet written
	input    chan struct{} // WakeInput: the reader may go on
	quit     chan struct{} // closed by Close: a paused reader gives up

	mu      sync.Mutex
	pending []byte
	spare   []byte
	closing bool
}

func newStdTransport(nc net.Conn, wc *websocket.Conn) *stdTransport {
	return &stdTransport{nc: nc, ws: wc, wake: make(chan struct{}, 1), input: make(chan struct{}, 1), quit: make(chan struct{}),
		readDone: make(chan struct{}), done: make(chan struct{})}
}

func (t *stdTransport) Writev(bs [][]byte) (int, error) {
	n := 0
	t.mu.Lock()
	if t.closing {
		t.mu.Unlock()
		return 0, net.ErrClosed
	}
	for _, b := range bs {
		t.pending = append(t.pending, b...)
		n += len(b)
	}
	t.mu.Unlock()
	t.buffered.Add(int64(n))
	t.signal()
	return n, nil
}

func (t *stdTransport) Write(b []byte) (int, error) { return t.Writev([][]byte{b}) }

func (t *stdTransport) OutboundBuffered() int { return int(t.buffered.Load()) }

// WakeInput lets a reader paused by the connection's budget go on.
func (t *stdTransport) WakeInput() {
	select {
	case t.input <- struct{}{}:
	default:
	}
}

// waitInput waits for WakeInput, or reports false once the connection
// has closed.
func (t *stdTransport) waitInput() bool {
	select {
	case <-t.input:
		return true
	case <-t.quit:
		return false
	}
}

// Close writes what is queued, shuts the write side and closes the socket
// once the client has closed its side, all within reactor.CloseLinger: the
// writer and the reader do the steps the session takes itself on the other
// engines (Transport.CloseWrite, then Close).
func (t *stdTransport) Close() error {
	t.mu.Lock()
	first := !t.closing
	t.closing = true
	t.mu.Unlock()
	if first {
		close(t.quit)
		deadline := time.Now().Add(reactor.CloseLinger)
		_ = t.nc.SetWriteDeadline(deadline)
		t.mu.Lock() // readDeadline leaves it alone from here on
		_ = t.nc.SetReadDeadline(deadline)
		t.mu.Unlock()
		t.signal()
	}
	return nil
}

// CloseWrite is Close: the writer shuts the write side once it has written
// what is queued.
func (t *stdTransport) CloseWrite() error { return t.Close() }

func (t *stdTransport) signal() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// writer writes what the loop queues. Once the connection closes and all
// is written it shuts its side of the socket and lets the reader take
// what the client still sends until the client closes, so that closing
// with unread input does not reset the connection under the client's
// last messages.
func (t *stdTransport) writer() {
	defer close(t.done)
	defer t.nc.Close()
	defer func() {
		t.release()
		if cw, ok := t.nc.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
			<-t.readDone // bounded by the read deadline Close set
		}
	}()
	for range t.wake {
		t.mu.Lock()
		buf := t.pending
		t.pending, t.spare = t.spare[:0], nil
		t.mu.Unlock()
		var err error
		if len(buf) > 0 {
			err = t.write(buf)
		}
		t.mu.Lock()
		if cap(buf) <= 64<<10 {
			t.spare = buf // two buffers take turns; a large one goes
		}
		more, done := len(t.pending) > 0, t.closing && len(t.pending) == 0
		t.mu.Unlock()
		if err != nil || done {
			return
		}
		if more {
			t.signal()
		}
	}
}

// write writes buf, counting each message out of buffered once the
// socket has taken it.
func (t *stdTransport) write(buf []byte) error {
	if t.ws == nil {
		_, err := t.nc.Write(buf)
		t.buffered.Add(-int64(len(buf)))
		return err
	}
	defer func() { t.buffered.Add(-int64(len(buf))) }() // what an error left
	for len(buf) > 0 {
		op, payload, rest, ok := splitServerFrame(buf)
		if !ok {
			return errors.New("std reactor: a malformed frame was queued")
		}
		t.buffered.Add(-int64(len(buf) - len(rest)))
		buf = rest
		var err error
		if op.IsControl() {
			err = t.ws.WriteControl(int(op), payload, time.Now().Add(reactor.CloseLinger))
		} else {
			err = t.ws.WriteMessage(int(op), payload)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// splitServerFrame cuts the first of the unmasked, unfragmented frames the
// server queues for a WebSocket connection off b.
func splitServerFrame(b []byte) (op ws.OpCode, payload, rest []byte, ok bool) {
	if len(b) < 2 {
		return 0, nil, nil, false
	}
	op = ws.OpCode(b[0] & 0x0f)
	n, h := uint64(b[1]&0x7f), 2
	switch n {
	case 126:
		if len(b) < 4 {
			return 0, nil, nil, false
		}
		n, h = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return 0, nil, nil, false
		}
		n, h = binary.BigEndian.Uint64(b[2:]), 10
	}
	if uint64(len(b)-h) < n {
		return 0, nil, nil, false
	}
	end := h + int(n)
	return op, b[h:end], b[end:], true
}

// connState counts upgrades that did not finish within the handshake
// timeout (net/http closes them at ReadHeaderTimeout).
func (r *stdReactor) connState(nc net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		r.opening.Store(nc, time.Now())
	case http.StateHijacked:
		r.opening.Delete(nc)
	case http.StateClosed:
		if t0, ok := r.opening.LoadAndDelete(nc); ok && time.Since(t0.(time.Time)) >= r.opt.HandshakeTimeout {
			r.h.Count(reactor.HandshakeTimedOut)
		}
	}
}

// earlyData lets gorilla upgrade a connection whose client sent frames
// right behind its upgrade request, in the same packet. gorilla refuses
// such a connection; RFC 6455 has a client wait for the answer, but the
// other engines serve one that does not, and so does this one: the bytes
// read ahead are replayed before the socket's.
type earlyData struct{ http.ResponseWriter }

func (e earlyData) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(e.ResponseWriter).Hijack()
	if err != nil || brw.Reader.Buffered() == 0 {
		return nc, brw, err
	}
	early, _ := brw.Reader.Peek(brw.Reader.Buffered())
	pc := &prefixConn{Conn: nc, prefix: bytes.Clone(early)}
	return pc, bufio.NewReadWriter(bufio.NewReader(pc), brw.Writer), nil
}

// prefixConn reads prefix before the connection's own bytes.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.prefix) > 0 {
		n := copy(b, p.prefix)
		p.prefix = p.prefix[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

func (p *prefixConn) CloseWrite() error {
	if cw, ok := p.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// ServingErr reports whether the listeners accept and the loops run.
func (r *stdReactor) ServingErr() error { return r.down.Err() }
