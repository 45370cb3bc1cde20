package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/tickfan/tickfan/server/reactor"
)

// Bounds of the HTTP listeners (--http-addr and --admin-addr). Anyone who
// reaches the HTTP port can open connections to it, so each connection is
// bounded in time and size, and the publish port's connections count in
// --max-conns with the clients'.
const (
	// httpReadHeaderTimeout is the time a client has to send a request's
	// line and headers, from its first byte (or from the connection's
	// opening, for its first request).
	httpReadHeaderTimeout = 10 * time.Second
	// httpMaxHeaderBytes bounds a request's line and headers (431 past it;
	// net/http allows 4 KiB more for its own reading). Producers send an
	// Authorization header and little else.
	httpMaxHeaderBytes = 16 << 10
	// httpWriteSlack is the time, past the read timeout, that a request has
	// to be handled and its answer written: the write deadline is set once
	// the headers are in, so it must cover the body's reading too.
	httpWriteSlack = 30 * time.Second
)

// newHTTPServer is an http.Server with the bounds above and the
// configured read and idle timeouts. net/http's own messages (accept
// errors and the back-off it applies to them, broken requests) go to the
// server's log as warnings.
func (s *Server) newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: httpReadHeaderTimeout,
		ReadTimeout:       s.cfg.HTTPReadTimeout,
		WriteTimeout:      s.cfg.HTTPReadTimeout + httpWriteSlack,
		IdleTimeout:       s.cfg.HTTPIdleTimeout,
		MaxHeaderBytes:    httpMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// listenHTTP binds the HTTP listener and, when Config.AdminAddr is set,
// the admin listener; on an error nothing stays bound.
func (s *Server) listenHTTP() error {
	ln, err := net.Listen("tcp", s.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http listen %s: %w", s.cfg.HTTPAddr, err)
	}
	if s.cfg.AdminAddr != "" {
		aln, err := net.Listen("tcp", s.cfg.AdminAddr)
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("admin listen %s: %w", s.cfg.AdminAddr, err)
		}
		s.adminLn = aln
	}
	s.httpLn = ln
	return nil
}

// closeHTTPListeners closes what listenHTTP bound, when serving never
// started.
func (s *Server) closeHTTPListeners() {
	_ = s.httpLn.Close()
	if s.adminLn != nil {
		_ = s.adminLn.Close()
	}
}

// serveHTTP serves the bound HTTP listeners. The publish listener's
// connections count in Config.MaxConns (httpListener); the admin
// listener's do not, so that metrics can be read while clients fill the
// node (bind it to an address only operators reach).
func (s *Server) serveHTTP() {
	s.httpSrv = s.newHTTPServer(s.httpHandler())
	go s.serve("http", s.httpSrv, &httpListener{Listener: s.httpLn, s: s}, &s.httpDown)
	if s.adminLn != nil {
		s.adminSrv = s.newHTTPServer(s.adminHandler())
		go s.serve("admin", s.adminSrv, s.adminLn, nil)
	}
}

// serve runs srv on ln until it is shut down. net/http retries accept
// errors that are temporary (EMFILE, ENFILE, ECONNABORTED) after a back-off
// of up to a second, so serving only ends on a listener that is broken;
// that is recorded in down (/readyz answers 503), when given.
func (s *Server) serve(what string, srv *http.Server, ln net.Listener, down *reactor.DownState) {
	err := srv.Serve(ln)
	if err == nil || errors.Is(err, http.ErrServerClosed) {
		return
	}
	s.log.Error(what+" server stopped", "err", err)
	if down != nil {
		down.Set(fmt.Errorf("%s listener stopped: %w", what, err))
	}
}

// httpOpen is the number of open connections of the HTTP listener. They
// count in Config.MaxConns with the loops' connections (admit): every one
// costs a file descriptor.
func (s *Server) httpOpen() int64 { return s.httpConns.Load() }

// AdminAddr returns the bound address of the admin listener, or "" when
// Config.AdminAddr is empty.
func (s *Server) AdminAddr() string {
	if s.adminLn == nil {
		return ""
	}
	return s.adminLn.Addr().String()
}

// httpListener is the HTTP listener in the connection budget: a connection
// accepted while the node holds Config.MaxConns connections (WebSocket, TCP
// and HTTP together) is closed at once and counted as refused for
// max_conns. Accept errors are handed to net/http unchanged, so that it
// backs off on the temporary ones; running out of file descriptors makes
// the node unready (/readyz) until an accept succeeds again.
type httpListener struct {
	net.Listener
	s *Server
}

func (l *httpListener) Accept() (net.Conn, error) {
	s := l.s
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				s.httpDown.Set(fmt.Errorf("http listener: %w", err))
			}
			return nil, err
		}
		s.httpDown.Clear()
		n := s.httpConns.Add(1)
		if s.openConns()+n > int64(s.cfg.MaxConns) {
			s.httpConns.Add(-1)
			s.metrics.rejectedConns.WithLabelValues("max_conns").Inc()
			_ = c.Close()
			continue
		}
		s.metrics.connsHTTP.Inc()
		return &httpConn{Conn: c, s: s}, nil
	}
}

// httpConn is an accepted HTTP connection; closing it gives its place back.
type httpConn struct {
	net.Conn
	s    *Server
	once sync.Once
}

func (c *httpConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.s.httpConns.Add(-1)
		c.s.metrics.connsHTTP.Dec()
	})
	return err
}

// CloseWrite lets net/http close a connection gracefully after an error
// answer (it shuts the write side and waits briefly for the client to read).
func (c *httpConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
