// Package reactor is the contract between a network engine and tickfan's
// connection state machine, and the engine tickfan runs on: gnet.
//
// An engine owns the listeners, the sockets and the goroutines that read
// and write them. The server owns everything a connection means: its
// handshake, commands, subscriptions, outbox and deadlines (a Session), and
// the share of work of each event loop (a Loop). The engine drives both
// through the interfaces below and touches nothing else of the server;
// the server reaches the socket only through a Transport.
//
// Goroutines: every Session method, every Transport method and
// Loop.Enter, Leave and RunPending run on the goroutine of the session's
// loop (gnet's event loop, evio's, or the goroutine the std engine runs for
// the loop), one at a time. Loop.SetWake runs before the engine serves;
// the wake function it is given, Loop.Post and every Engine method may be
// called from any goroutine.
//
// Two more engines implement the contract outside this package, to be
// measured against (internal/engine): evio's event loops, and the standard
// library with a reading and a writing goroutine per connection.
package reactor

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/gobwas/ws"

	"github.com/tickfan/tickfan/codec"
)

// Kind says which listener accepted a connection.
type Kind uint8

const (
	// WebSocket connections start with the HTTP upgrade (PROTOCOL.md).
	WebSocket Kind = iota
	// TCP connections speak length-framed msgpack from the first byte.
	TCP
)

func (k Kind) String() string {
	if k == TCP {
		return "tcp"
	}
	return "ws"
}

// Transport is what a session needs of its socket. Loop goroutine only.
type Transport interface {
	// Writev writes what the socket takes now and keeps the rest in the
	// engine's write buffer, which the engine drains when the socket is
	// writable. The engine does not keep bs.
	Writev(bs [][]byte) (int, error)
	// Write is Writev of one buffer.
	Write(b []byte) (int, error)
	// OutboundBuffered is the size of that write buffer, in bytes.
	OutboundBuffered() int
	// CloseWrite shuts the socket's write side once the engine's write
	// buffer is empty: the client reads what was written, then end of
	// stream, while the engine goes on reading (and the session drops
	// what it reads) until the client closes its side.
	CloseWrite() error
	// Close closes the socket now.
	Close() error
	// WakeInput has the engine hand the session its unread input again
	// soon, on the loop: input the session left unread while it was over
	// its outbox budget (Session.InputPaused).
	WakeInput()
}

// Session is one connection's state machine as an engine drives it. Loop
// goroutine only.
type Session interface {
	// Data hands the session the bytes read and not yet used, and
	// returns how many it used; the engine keeps the rest (a partial
	// frame) and hands it again, with what arrives next.
	Data(in []byte) int
	// InputPaused reports whether the session reads nothing more until
	// the engine is told so by Transport.WakeInput (backpressure: the
	// client reads its replies too slowly, or a command waits for work
	// off the loop).
	InputPaused() bool
	// Unread tells a paused session how many bytes the engine holds
	// unread for it, without handing them over: an engine that goes on
	// reading the socket while a session is paused (gnet) calls it on
	// each read instead of Data, so the input is not copied again and
	// again while it waits, and the session still bounds it.
	Unread(n int)
	// Closed tells the session that the engine has closed its socket.
	// It is the last call.
	Closed()
}

// MessageSession is the Session of a WebSocket connection whose engine
// does the upgrade and the framing itself (the std engine, on
// gorilla/websocket). Loop goroutine only.
type MessageSession interface {
	Session
	// Upgraded tells the session the upgrade is done, in format f.
	Upgraded(f codec.Format)
	// Message hands one whole message or control frame (a close frame
	// with its payload). It reports false when the session is over its
	// budget and took nothing: the engine hands the same message again
	// after Transport.WakeInput.
	Message(op ws.OpCode, payload []byte) bool
	// MaxMessage is the largest message the client may send now (it
	// grows once the client has a token).
	MaxMessage() int
	// MessageTimedOut tells the session that a message begun was not
	// finished within Options.MessageTimeout.
	MessageTimedOut()
}

// Loop is the server's side of one event loop: the work that reaches the
// loop's connections from elsewhere (publications, deadlines, posted
// results) and the writes at the end of a turn.
type Loop interface {
	// SetWake gives the loop the engine's way to have RunPending called
	// soon on the loop's goroutine. wake may be called from any goroutine
	// and must not block. The engine calls SetWake before it serves.
	SetWake(wake func())
	// Enter marks the start of the engine's handling of socket input on
	// the loop; work scheduled meanwhile needs no wake: Leave runs it
	// before the engine waits again. Loop goroutine only.
	Enter()
	// Leave ends what Enter began and runs what was scheduled meanwhile.
	// Loop goroutine only.
	Leave()
	// RunPending runs the loop's pending work, if any. Loop goroutine
	// only: the engine calls it when woken.
	RunPending()
	// Post runs fn on the loop's goroutine soon. Any goroutine.
	Post(fn func())
}

// Handler is the server as an engine sees it.
type Handler interface {
	// Loops are the server's loops; the engine pairs each of its event
	// loops with one of them (Options.Loops of each).
	Loops() []Loop
	// Open makes the session of a socket accepted on loop l. Loop l's
	// goroutine only.
	Open(t Transport, l Loop, k Kind, remote net.Addr) Session
	// Draining reports that the server takes no new connections: the
	// engine closes them on accept. Any goroutine.
	Draining() bool
	// AllowOrigin reports whether a WebSocket upgrade from origin is
	// allowed (an engine that does the upgrade itself asks). Any goroutine.
	AllowOrigin(origin []byte) bool
	// Count counts an event the engine saw. Any goroutine.
	Count(e Event)
	// Logger is where the engine logs.
	Logger() *slog.Logger
}

// Event is something an engine saw that the server counts in its metrics.
type Event uint8

const (
	// AcceptFailed: accepting a connection failed (out of descriptors,
	// mostly).
	AcceptFailed Event = iota
	// HandshakeFailed: a WebSocket upgrade was refused.
	HandshakeFailed
	// HandshakeTimedOut: a WebSocket upgrade did not finish in time.
	HandshakeTimedOut
)

// Options are what an engine is told of the server's configuration.
type Options struct {
	WSAddr, TCPAddr string // listen addresses, host:port
	WSPath          string // the WebSocket endpoint's path
	Loops           int    // event loops
	// HandshakeTimeout bounds a WebSocket upgrade; MessageTimeout a
	// message begun (engines that frame messages themselves).
	HandshakeTimeout, MessageTimeout time.Duration
	// AnonMaxFrame is the largest message of a client without a token.
	AnonMaxFrame int
	// BusyPoll, when more than 0, has each event loop poll its sockets
	// without blocking for that long after it handled input or work
	// before it sleeps in the kernel (gnet only; see spinner). For
	// deployments that give the loops cores of their own.
	BusyPoll time.Duration
}

// CloseLinger bounds a close: the time the last bytes (op close, a close
// frame) have to leave and the client then has to close its side.
const CloseLinger = 2 * time.Second

// Engine serves the WebSocket and TCP listeners for a Handler.
type Engine interface {
	// Start binds the listeners and serves; it returns once they are
	// bound. The engine's goroutines are counted in wg.
	Start(wg *sync.WaitGroup) error
	// Stop closes the listeners and every connection.
	Stop(ctx context.Context) error
	// Addrs are the bound WebSocket and TCP addresses.
	Addrs() (ws, tcp net.Addr)
	// ServingErr is nil while every listener accepts and every loop runs,
	// or says what is not serving (/readyz answers 503 with it).
	ServingErr() error
}
