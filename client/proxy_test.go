package client

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"
)

// linkProxy stands between clients and a server on loopback, so that a
// test can break the link in the ways networks do: cut every connection
// (cut), refuse new ones for a while (refuse), go silent without closing
// anything (freeze), or lose or repeat one frame of the server's stream
// (filter).
type linkProxy struct {
	t      testing.TB
	ln     net.Listener
	target string
	proto  Proto // how to split the server's stream into frames, for filter

	mu      sync.Mutex
	links   map[*link]bool
	refused bool
	// filter sees each frame from the server and says how many times to
	// pass it on: 0 loses it, 2 repeats it.
	filter func(Frame) int
	wg     sync.WaitGroup
}

// link is one client's connection through the proxy.
type link struct {
	client, server net.Conn
	frozen         bool // under linkProxy.mu: the server's bytes are dropped
}

func startProxy(t testing.TB, target string, p Proto) *linkProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	px := &linkProxy{t: t, ln: ln, target: target, proto: p, links: make(map[*link]bool)}
	px.wg.Add(1)
	go px.accept()
	t.Cleanup(func() {
		ln.Close()
		px.cut()
		px.wg.Wait()
	})
	return px
}

// addr is the proxy's address in the form cfg.Addr wants for its proto.
func (px *linkProxy) addr() string {
	if px.proto.WebSocket() {
		return "ws://" + px.ln.Addr().String() + "/ws"
	}
	return px.ln.Addr().String()
}

func (px *linkProxy) accept() {
	defer px.wg.Done()
	for {
		c, err := px.ln.Accept()
		if err != nil {
			return
		}
		px.mu.Lock()
		refused := px.refused
		px.mu.Unlock()
		if refused {
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", px.target)
		if err != nil {
			c.Close()
			continue
		}
		l := &link{client: c, server: s}
		px.mu.Lock()
		px.links[l] = true
		px.mu.Unlock()
		px.wg.Add(2)
		go func() {
			defer px.wg.Done()
			_, _ = io.Copy(s, c)
			s.Close()
		}()
		go func() {
			defer px.wg.Done()
			px.serverToClient(l)
			c.Close()
			px.mu.Lock()
			delete(px.links, l)
			px.mu.Unlock()
		}()
	}
}

// serverToClient copies the server's stream to the client frame by frame
// (after the WebSocket handshake's HTTP answer), through filter.
func (px *linkProxy) serverToClient(l *link) {
	var buf []byte
	chunk := make([]byte, 64<<10)
	handshake := px.proto.WebSocket()
	for {
		n, err := l.server.Read(chunk)
		buf = append(buf, chunk[:n]...)
		px.mu.Lock()
		frozen, filter := l.frozen, px.filter
		px.mu.Unlock()
		if handshake {
			i := bytes.Index(buf, []byte("\r\n\r\n"))
			if i < 0 {
				if err != nil {
					return
				}
				continue
			}
			if _, werr := l.client.Write(buf[:i+4]); werr != nil {
				return
			}
			buf, handshake = buf[i+4:], false
		}
		var out []byte
		for {
			fr, size, perr := px.proto.ParseFrame(buf)
			if perr != nil {
				px.t.Errorf("proxy: %v", perr)
				return
			}
			if size == 0 {
				break
			}
			times := 1
			if filter != nil {
				times = filter(fr)
			}
			for range times {
				out = append(out, buf[:size]...)
			}
			buf = buf[size:]
		}
		if len(out) > 0 && !frozen {
			if _, werr := l.client.Write(out); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// cut closes every link at once, as a server crash or a broken network
// would: no close message, no close frame.
func (px *linkProxy) cut() {
	px.mu.Lock()
	defer px.mu.Unlock()
	for l := range px.links {
		l.client.Close()
		l.server.Close()
	}
}

// refuse makes the proxy close new connections at once (on) or pass them
// on again (off).
func (px *linkProxy) refuse(on bool) {
	px.mu.Lock()
	px.refused = on
	px.mu.Unlock()
}

// freeze drops, from now on, everything the server sends on the links
// open now, while their sockets stay open: the client hears nothing.
func (px *linkProxy) freeze() {
	px.mu.Lock()
	defer px.mu.Unlock()
	for l := range px.links {
		l.frozen = true
	}
}

// setFilter sets filter for every link, open or to come.
func (px *linkProxy) setFilter(f func(Frame) int) {
	px.mu.Lock()
	px.filter = f
	px.mu.Unlock()
}
