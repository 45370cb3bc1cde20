package server

import (
	"log/slog"
	"net"

	"github.com/tickfan/tickfan/server/reactor"
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

// newEngine builds the engine of s.cfg.Engine, which New has checked.
func newEngine(s *Server) reactor.Engine {
	h, opt := engineHandler{s}, reactor.Options{
		WSAddr: s.cfg.WSAddr, TCPAddr: s.cfg.TCPAddr, WSPath: s.cfg.WSPath, Loops: s.cfg.Loops,
		HandshakeTimeout: s.cfg.HandshakeTimeout, MessageTimeout: s.cfg.MessageTimeout,
		AnonMaxFrame: s.cfg.AnonMaxFrame, BusyPoll: s.cfg.BusyPoll,
	}
	if mk := otherEngines[s.cfg.Engine]; mk != nil {
		return mk(h, opt)
	}
	return reactor.NewGnet(h, opt)
}

// engineHandler is the server as its engine sees it (reactor.Handler).
type engineHandler struct{ s *Server }

func (h engineHandler) Loops() []reactor.Loop {
	loops := make([]reactor.Loop, len(h.s.loops))
	for i, l := range h.s.loops {
		loops[i] = l
	}
	return loops
}

func (h engineHandler) Open(t reactor.Transport, l reactor.Loop, k reactor.Kind, remote net.Addr) reactor.Session {
	return h.s.openConn(t, l.(*loop), k, remote)
}

func (h engineHandler) Draining() bool { return h.s.draining.Load() }

func (h engineHandler) AllowOrigin(origin []byte) bool {
	return h.s.origins == nil || h.s.allowOrigin(origin)
}

func (h engineHandler) Logger() *slog.Logger { return h.s.log }

func (h engineHandler) Count(e reactor.Event) {
	switch e {
	case reactor.AcceptFailed:
		h.s.metrics.acceptErrors.Inc()
	case reactor.HandshakeFailed:
		h.s.metrics.handshakeFailures.Inc()
	case reactor.HandshakeTimedOut:
		h.s.metrics.handshakeTimeouts.Inc()
	}
}

// openConn sets up a connection an engine accepted on loop l, and applies
// the connection limits. A WebSocket connection starts in its handshake.
func (s *Server) openConn(t reactor.Transport, l *loop, kind reactor.Kind, remote net.Addr) *conn {
	c := newConn(t, l, kind)
	if kind == reactor.TCP {
		s.metrics.conns(reactor.TCP).Inc()
	}
	if ta, ok := remote.(*net.TCPAddr); ok {
		c.ip = ta.AddrPort().Addr().Unmap()
	}
	s.admit(c)
	l.flush() // a refusal is written at once
	return c
}
