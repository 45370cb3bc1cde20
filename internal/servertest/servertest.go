// Package servertest runs an in-process tickfan server for the tests of
// the packages around it (client, cmd/tickfan): on loopback ports the OS
// picks, stopped when the test ends, and able to stop and start again on
// the same ports, as a restarted process would.
package servertest

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/tickfan/tickfan/server"
)

// stopTimeout bounds a Shutdown.
const stopTimeout = 10 * time.Second

// Node is a server that a test may stop and start again.
type Node struct {
	Cfg server.Config  // the config of every start; its addresses are the bound ones after the first
	Srv *server.Server // the server of the last start

	t testing.TB
}

// Start starts a server with cfg, whose empty addresses become
// 127.0.0.1:0, with one loop and its logs discarded unless cfg says
// otherwise, and shuts it down when the test ends.
func Start(t testing.TB, cfg server.Config) *Node {
	t.Helper()
	for _, a := range []*string{&cfg.WSAddr, &cfg.TCPAddr, &cfg.HTTPAddr} {
		if *a == "" {
			*a = "127.0.0.1:0"
		}
	}
	if cfg.Loops == 0 {
		cfg.Loops = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	n := &Node{Cfg: cfg, t: t}
	n.Start()
	t.Cleanup(n.Stop)
	return n
}

// Start starts the server again after Stop, on the same ports.
func (n *Node) Start() {
	n.t.Helper()
	srv, err := server.New(n.Cfg)
	if err == nil {
		err = srv.Start()
	}
	if err != nil {
		n.t.Fatalf("start the server: %v", err)
	}
	n.Srv = srv
	n.Cfg.WSAddr, n.Cfg.TCPAddr, n.Cfg.HTTPAddr = srv.WSAddr(), srv.TCPAddr(), srv.HTTPAddr()
}

// Stop shuts the server down: its connections end and its ports are
// free. A second Stop does nothing.
func (n *Node) Stop() {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	if err := n.Srv.Shutdown(ctx); err != nil {
		n.t.Errorf("shut the server down: %v", err)
	}
}

// Restart stops the server and starts a new one on the same ports.
func (n *Node) Restart() {
	n.t.Helper()
	n.Stop()
	n.Start()
}

// WSURL is the server's WebSocket URL.
func (n *Node) WSURL() string { return "ws://" + n.Srv.WSAddr() + n.wsPath() }

func (n *Node) wsPath() string {
	if n.Cfg.WSPath == "" {
		return "/ws"
	}
	return n.Cfg.WSPath
}

// HTTPURL is the base URL of the server's HTTP API.
func (n *Node) HTTPURL() string { return "http://" + n.Srv.HTTPAddr() }
