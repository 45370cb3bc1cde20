package server

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tickfan/tickfan/codec"
	"github.com/tickfan/tickfan/topic"
)

// httpHandler serves the HTTP port: the publish API and the health
// checks, and the metrics and the status page unless Config.AdminAddr
// moves them to the admin listener.
func (s *Server) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/publish", s.handlePublish)
	s.handleHealth(mux)
	if s.cfg.AdminAddr == "" {
		s.handleAdmin(mux)
	}
	return mux
}

// adminHandler serves the admin listener: the metrics and the status page,
// and the health checks the status page links to.
func (s *Server) adminHandler() http.Handler {
	mux := http.NewServeMux()
	s.handleHealth(mux)
	s.handleAdmin(mux)
	return mux
}

func (s *Server) handleHealth(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.handleReady)
}

func (s *Server) handleAdmin(mux *http.ServeMux) {
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	s.handleStatusPage(mux)
}

// debugListener serves /debug/pprof/ on Config.DebugAddr, apart from the
// public HTTP API: profiles, traces and the command line (which may hold
// secrets) are for the operator only.
type debugListener struct {
	ln    net.Listener
	srv   *http.Server
	close sync.Once
}

// startDebug binds Config.DebugAddr, when set, and serves pprof on it.
func (s *Server) startDebug() error {
	if s.cfg.DebugAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", s.cfg.DebugAddr)
	if err != nil {
		return fmt.Errorf("debug listen %s: %w", s.cfg.DebugAddr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	// No write timeout: a CPU profile or a trace takes as long as asked.
	d := &debugListener{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	s.debug = d
	go func() {
		if err := d.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("debug server stopped", "err", err)
		}
	}()
	where := "http://" + ln.Addr().String() + "/debug/pprof/"
	if ap, err := netip.ParseAddrPort(ln.Addr().String()); err == nil && ap.Addr().IsLoopback() {
		s.log.Info("pprof debug listener", "debug", where)
	} else {
		s.log.Warn("pprof debug listener is not on a loopback address: anyone who reaches it can read profiles and the command line; bind it to 127.0.0.1",
			"debug", where)
	}
	return nil
}

// closeDebug closes the debug listener and any profile it is serving;
// later calls do nothing.
func (s *Server) closeDebug() (err error) {
	if s.debug == nil {
		return nil
	}
	s.debug.close.Do(func() { err = s.debug.srv.Close() })
	return err
}

// DebugAddr returns the bound address of the pprof listener, or "" when
// Config.DebugAddr is empty.
func (s *Server) DebugAddr() string {
	if s.debug == nil {
		return ""
	}
	return s.debug.ln.Addr().String()
}

func (s *Server) handleReady(w http.ResponseWriter, _ *http.Request) {
	if s.draining.Load() {
		writeErr(w, http.StatusServiceUnavailable, "draining")
		return
	}
	// A listener that stopped accepting or a loop that stopped running
	// leaves the node unable to serve some clients: out of rotation.
	if s.engineNet != nil {
		if err := s.engineNet.ServingErr(); err != nil {
			writeErr(w, http.StatusServiceUnavailable, "not serving: "+err.Error())
			return
		}
	}
	if err := s.httpDown.Err(); err != nil {
		writeErr(w, http.StatusServiceUnavailable, "not serving: "+err.Error())
		return
	}
	if err := s.broker.Ready(); err != nil {
		writeErr(w, http.StatusServiceUnavailable, "broker: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// publishItem is one publication in a POST /api/publish body.
type publishItem struct {
	T string          `json:"t"`
	D json.RawMessage `json:"d"`
	K string          `json:"k"`
}

type publishBody struct {
	publishItem
	Batch []publishItem `json:"batch"`
}

func (s *Server) handlePublish(w http.ResponseWriter, r *http.Request) {
	if !s.apiKeyOK(r.Header.Get("Authorization")) {
		msg := "Authorization: apikey <key> missing or wrong"
		if s.cfg.APIKey == "" {
			msg = "HTTP publishing is off: start the server with --api-key"
		}
		s.metrics.errors(codec.CodeUnauthorized).Inc()
		writeErr(w, http.StatusUnauthorized, msg)
		return
	}
	limit := int64(s.cfg.MaxBody)
	var body publishBody
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	if err := dec.Decode(&body); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.httpErr(w, codec.CodeTooLarge, fmt.Sprintf("body over %d bytes", limit))
			return
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// Config.HTTPReadTimeout passed before the body was in; the
			// connection is closed after this answer.
			writeErr(w, http.StatusRequestTimeout, fmt.Sprintf("body not received within %s", s.cfg.HTTPReadTimeout))
			return
		}
		s.httpErr(w, codec.CodeBadRequest, "body is not a publication: "+err.Error())
		return
	}
	if dec.More() {
		s.httpErr(w, codec.CodeBadRequest, "body holds more than one JSON value")
		return
	}
	items, batch := body.Batch, body.Batch != nil
	if !batch {
		items = []publishItem{body.publishItem}
	}
	switch {
	case batch && len(items) == 0:
		s.httpErr(w, codec.CodeBadRequest, "batch is empty")
		return
	case len(items) > s.cfg.MaxBatch:
		s.httpErr(w, codec.CodeTooLarge, fmt.Sprintf("batch of %d, at most %d", len(items), s.cfg.MaxBatch))
		return
	}
	reqs := make([]topic.PublishRequest, len(items))
	for i, it := range items {
		req, code, msg := publishRequest(it.T, it.D, false, it.K, s.cfg.MaxFrame)
		if code != 0 {
			if batch {
				msg = fmt.Sprintf("batch item %d: %s", i, msg)
			}
			s.httpErr(w, code, msg)
			return
		}
		reqs[i] = req
	}
	pos, err := s.Publish(r.Context(), reqs)
	if err != nil {
		s.httpErr(w, publishErrCode(err), err.Error())
		return
	}
	if !batch {
		writeJSON(w, http.StatusOK, pos[0])
		return
	}
	writeJSON(w, http.StatusOK, map[string][]topic.Position{"results": pos})
}

// apiKeyOK checks "Authorization: apikey <key>" in constant time.
func (s *Server) apiKeyOK(h string) bool {
	const scheme = "apikey "
	if s.cfg.APIKey == "" || len(h) < len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(h[len(scheme):]), []byte(s.cfg.APIKey)) == 1
}

func (s *Server) httpErr(w http.ResponseWriter, code int, msg string) {
	s.metrics.errors(code).Inc()
	writeErr(w, code, msg)
}

func writeErr(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]codec.Error{"err": {Code: code, Msg: msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // messages such as "apikey <key>" read as written
	_ = enc.Encode(v)
}

// dialAddr turns a bound listen address into one a client can dial: a
// wildcard host (empty, 0.0.0.0, ::) becomes the host name the client
// reached the status page by (reqHost, an HTTP Host header), with the
// listener's port; a specific host is kept.
func dialAddr(bound, reqHost string) string {
	host, port, err := net.SplitHostPort(bound)
	if err != nil {
		return bound
	}
	if host != "" {
		if ip, err := netip.ParseAddr(host); err != nil || !ip.IsUnspecified() {
			return bound
		}
	}
	name := (&url.URL{Host: reqHost}).Hostname()
	if name == "" {
		name = "localhost"
	}
	return net.JoinHostPort(name, port)
}
