package server

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"strings"
	"time"
)

// statusHTML is the status page: one file, its CSS and script inline, so
// that it works offline and needs no build step. The server fills in the
// addresses (statusPageAddrs); the script reads the rest from
// /api/status/stream.
//
//go:embed status.html
var statusHTML string

// statusWriteTimeout bounds the writing of one stream event: a page that
// reads nothing for this long is dropped.
const statusWriteTimeout = 10 * time.Second

// handleStatusPage registers the status page and its data, unless
// Config.StatusPageOff.
func (s *Server) handleStatusPage(mux *http.ServeMux) {
	if s.cfg.StatusPageOff {
		return
	}
	mux.HandleFunc("GET /{$}", s.handleStatus)
	mux.HandleFunc("GET /api/status", s.handleStatusJSON)
	mux.HandleFunc("GET /api/status/stream", s.handleStatusStream)
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	n := s.statusNode(r)
	page := strings.NewReplacer(
		"{{WS}}", html.EscapeString(n.WS), "{{TCP}}", html.EscapeString(n.TCP),
	).Replace(statusHTML)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(page))
}

// statusNode is what a page needs to know of the node to reach it, as
// seen from the request: addresses a client can dial (dialAddr), and
// whether a page from this host may open the WebSocket.
type statusNode struct {
	WS          string `json:"ws"`
	TCP         string `json:"tcp"`
	Subprotocol string `json:"subprotocol"`
	Engine      string `json:"engine"`
	Loops       int    `json:"loops"`
	History     int    `json:"history"`
	RequireAuth bool   `json:"require_auth"`
	// OriginOK: a page served from the request's Host may open the
	// WebSocket (--allowed-origins is empty or names it).
	OriginOK bool `json:"origin_ok"`
}

func (s *Server) statusNode(r *http.Request) statusNode {
	origin := "http://" + r.Host
	if r.TLS != nil {
		origin = "https://" + r.Host
	}
	return statusNode{
		WS: "ws://" + dialAddr(s.WSAddr(), r.Host) + s.cfg.WSPath, TCP: dialAddr(s.TCPAddr(), r.Host),
		Subprotocol: "tickfan.v1.json", Engine: s.cfg.Engine, Loops: s.cfg.Loops, History: s.cfg.HistorySize,
		RequireAuth: s.cfg.RequireAuth, OriginOK: s.origins == nil || s.allowOrigin([]byte(origin)),
	}
}

// handleStatusJSON answers one snapshot with its history:
// {"node":{...},"status":{...}}. It turns the topic scan on for a while;
// when the topics were not scanned lately it waits (up to two seconds)
// for a sample with a scan (their rates come with the scan after).
func (s *Server) handleStatusJSON(w http.ResponseWriter, r *http.Request) {
	ss := s.status
	now := time.Now()
	ss.watchUntil.Store(now.Add(statusWatch).UnixNano())
	f := ss.current()
	if !s.cfg.RequireAuth && now.Sub(f.scanAt) > 2*statusEvery {
		wait := time.NewTimer(2 * statusEvery)
		defer wait.Stop()
	fresh:
		for now.Sub(f.scanAt) > 2*statusEvery {
			select {
			case <-f.next:
				f = f.succ
			case <-wait.C:
				break fresh // a scan throttled (statusScanShare): the list says its age
			case <-ss.end:
				break fresh
			case <-r.Context().Done():
				return
			}
		}
	}
	node, _ := json.Marshal(s.statusNode(r))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = fmt.Fprintf(w, `{"node":%s,"status":%s}`+"\n", node, f.full)
}

// handleStatusStream streams the snapshots as server-sent events: first
// "node" (statusNode) and "status" with the history, then a "status"
// without it each second, the same bytes for every stream. It ends when
// the node drains or shuts down ("end"), or the page goes.
func (s *Server) handleStatusStream(w http.ResponseWriter, r *http.Request) {
	ss := s.status
	if n := ss.streams.Add(1); n > maxStatusStreams {
		ss.streams.Add(-1)
		writeErr(w, http.StatusServiceUnavailable, fmt.Sprintf(
			"%d status pages are streaming, the most this node serves; close one, or read GET /api/status", maxStatusStreams))
		return
	}
	defer ss.streams.Add(-1)
	select {
	case <-ss.end:
		writeErr(w, http.StatusServiceUnavailable, "draining")
		return
	default:
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // a proxy in front must not hold the events back
	w.WriteHeader(http.StatusOK)

	send := func(event string, data []byte) bool {
		// Each event gets its own write deadline, past the server's
		// WriteTimeout, which would otherwise end the stream.
		_ = rc.SetWriteDeadline(time.Now().Add(statusWriteTimeout))
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	node, _ := json.Marshal(s.statusNode(r))
	f := ss.current()
	if !send("node", node) || !send("status", f.full) {
		return
	}
	for {
		select {
		case <-f.next:
			f = f.succ
			if !send("status", f.snap) {
				return
			}
		case <-ss.end:
			send("end", []byte(`"the node is draining or shutting down"`))
			return
		case <-r.Context().Done():
			return
		}
	}
}
