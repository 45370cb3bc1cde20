package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/tickfan/tickfan/internal/servertest"
	"github.com/tickfan/tickfan/server"
)

// waitFor bounds every read of these tests.
const waitFor = 5 * time.Second

// startServer runs a real server on 127.0.0.1 ports the OS picks, open to
// anonymous publishing, and shuts it down when the test ends.
func startServer(t *testing.T) *server.Server {
	t.Helper()
	return servertest.Start(t, server.Config{
		AnonymousPub: ">", CmdRate: 1_000_000,
		Heartbeat: time.Minute, IdleTimeout: 5 * time.Minute, DrainTimeout: waitFor,
	}).Srv
}

// transports lists every Proto with its address on srv.
func transports(srv *server.Server) []Config {
	ws := "ws://" + srv.WSAddr() + "/ws"
	return []Config{{Proto: WSJSON, Addr: ws}, {Proto: WSMsgpack, Addr: ws}, {Proto: TCP, Addr: srv.TCPAddr()}}
}

func dialT(t *testing.T, cfg Config) *Conn {
	t.Helper()
	c, err := Dial(context.Background(), cfg)
	if err != nil {
		t.Fatalf("dial %s: %v", cfg.Proto, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// next reads the next message that is not a heartbeat.
func next(t *testing.T, c *Conn) Message {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(waitFor))
	for {
		m, err := c.Next()
		if err != nil {
			t.Fatalf("%s: Next: %v", c.Proto(), err)
		}
		if m.Kind != KindPing {
			return m
		}
	}
}

// reply reads the next message and checks it is the reply to id.
func reply(t *testing.T, c *Conn, id uint64) Message {
	t.Helper()
	m := next(t, c)
	if m.Kind != KindReply || !m.HasID || m.ID != id {
		t.Fatalf("%s: got %s %+v, want the reply to %d", c.Proto(), m.Kind, m, id)
	}
	return m
}

// data is a payload in the encoding of p.
func data(t *testing.T, p Proto, v any) []byte {
	t.Helper()
	if !p.Msgpack() {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSession runs, over every transport, a subscription, a publication
// from the same connection (its reply and its delivery with the seq the
// reply gave), a snapshot, an error reply carrying its id, unsub and ping.
func TestSession(t *testing.T) {
	srv := startServer(t)
	for _, cfg := range transports(srv) {
		t.Run(string(cfg.Proto), func(t *testing.T) {
			c := dialT(t, cfg)
			name := "client.test." + string(cfg.Proto)
			if err := c.Subscribe(1, []string{name}, nil); err != nil {
				t.Fatal(err)
			}
			m := reply(t, c, 1)
			var subs map[string]SubResult
			if err := m.DecodeRes(&subs); err != nil || subs[name].E == "" || subs[name].S != 0 || subs[name].Rec {
				t.Fatalf("sub res %+v %v, want %s at s 0 with an epoch", subs, err, name)
			}

			if err := c.Publish(2, name, data(t, cfg.Proto, map[string]any{"p": 1.5}), false); err != nil {
				t.Fatal(err)
			}
			var pos Position
			if err := reply(t, c, 2).DecodeRes(&pos); err != nil || pos != (Position{subs[name].E, 1}) {
				t.Fatalf("pub res %+v %v, want s 1 of epoch %s", pos, err, subs[name].E)
			}
			pub := next(t, c)
			var d map[string]float64
			if pub.Kind != KindPublication || pub.Topic != name || pub.Seq != 1 || pub.Snap || pub.DecodeData(&d) != nil || d["p"] != 1.5 {
				t.Fatalf("got %s %+v (data %v), want the publication at s 1", pub.Kind, pub, d)
			}

			if err := c.Publish(3, name, data(t, cfg.Proto, []int{7}), true); err != nil {
				t.Fatal(err)
			}
			reply(t, c, 3)
			// The server sends the same frames as before: the scan reads
			// what Decode reads.
			_ = c.SetReadDeadline(time.Now().Add(waitFor))
			body, err := c.NextBody()
			if err != nil {
				t.Fatal(err)
			}
			sp, ok := ScanPublication(body, cfg.Proto.Msgpack())
			full, derr := Decode(body, cfg.Proto.Msgpack())
			if !ok || derr != nil || string(sp.Topic) != name || sp.Seq != 2 || !sp.Snap ||
				full.Seq != 2 || !full.Snap || string(full.Data) != string(sp.Data) || string(sp.Data) != string(data(t, cfg.Proto, []int{7})) {
				t.Fatalf("snapshot scanned %+v %v, decoded %+v %v", sp, ok, full, derr)
			}

			if err := c.Subscribe(4, []string{name}, nil); err != nil {
				t.Fatal(err)
			}
			if m := reply(t, c, 4); m.Err == nil || m.Err.Code != 409 || len(m.Res) != 0 {
				t.Fatalf("second sub: %+v, want error 409 with id 4", m)
			}
			if err := c.Subscribe(5, []string{"bad..name"}, nil); err != nil {
				t.Fatal(err)
			}
			if m := reply(t, c, 5); m.Err == nil || m.Err.Code != 400 {
				t.Fatalf("bad name: %+v, want error 400 with id 5", m)
			}
			if err := c.Unsubscribe(6, []string{name}); err != nil {
				t.Fatal(err)
			}
			if m := reply(t, c, 6); m.Err != nil {
				t.Fatalf("unsub: %v", m.Err)
			}
			if err := c.Ping(7); err != nil {
				t.Fatal(err)
			}
			if m := reply(t, c, 7); m.Err != nil || string(m.Res) == "" {
				t.Fatalf("ping: %+v", m)
			}
		})
	}
}

// TestSinceRecovers subscribes with since and gets what it missed.
func TestSinceRecovers(t *testing.T) {
	srv := startServer(t)
	for _, cfg := range transports(srv) {
		t.Run(string(cfg.Proto), func(t *testing.T) {
			name := "client.since." + string(cfg.Proto)
			p := dialT(t, cfg)
			var pos Position
			for i := range 3 {
				if err := p.Publish(uint64(i+1), name, data(t, cfg.Proto, i), false); err != nil {
					t.Fatal(err)
				}
				if err := reply(t, p, uint64(i+1)).DecodeRes(&pos); err != nil {
					t.Fatal(err)
				}
			}
			c := dialT(t, cfg)
			if err := c.Subscribe(1, []string{name}, map[string]Position{name: {E: pos.E, S: 1}}); err != nil {
				t.Fatal(err)
			}
			var subs map[string]SubResult
			if err := reply(t, c, 1).DecodeRes(&subs); err != nil || subs[name] != (SubResult{pos.E, 3, true}) {
				t.Fatalf("sub res %+v %v, want recovered at s 3", subs, err)
			}
			for _, s := range []uint64{2, 3} {
				if m := next(t, c); m.Kind != KindPublication || m.Seq != s {
					t.Fatalf("got %s %+v, want the publication at s %d", m.Kind, m, s)
				}
			}
		})
	}
}

// TestCloseCode reads the server's op close and, over WebSocket, its close
// frame with the same code, when the node drains (4007).
func TestCloseCode(t *testing.T) {
	srv := startServer(t)
	var conns []*Conn
	for _, cfg := range transports(srv) {
		c := dialT(t, cfg)
		if err := c.Ping(1); err != nil {
			t.Fatal(err)
		}
		reply(t, c, 1) // admitted
		conns = append(conns, c)
	}
	drained := make(chan struct{})
	go func() { srv.Drain(); close(drained) }()
	for _, c := range conns {
		m := next(t, c)
		if m.Kind != KindClose || m.Code != 4007 || m.Reason == "" {
			t.Fatalf("%s: got %s %+v, want op close 4007", c.Proto(), m.Kind, m)
		}
		_, err := c.Next()
		var ce *CloseError
		switch {
		case c.Proto().WebSocket() && (!errors.As(err, &ce) || ce.Code != 4007):
			t.Fatalf("%s: after op close: %v, want the close frame 4007", c.Proto(), err)
		case !c.Proto().WebSocket() && err != io.EOF:
			t.Fatalf("%s: after op close: %v, want the end of the stream", c.Proto(), err)
		}
		if c.Proto().WebSocket() {
			// We answered the close frame: the server ends the stream.
			if _, err := c.Next(); err != io.EOF {
				t.Fatalf("%s: after the close frames: %v, want the end of the stream", c.Proto(), err)
			}
		}
		c.Close()
	}
	select {
	case <-drained:
	case <-time.After(waitFor):
		t.Fatal("the server still drains: a client did not finish closing")
	}
}

// TestDialErrors names the usual mistakes.
func TestDialErrors(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	if _, err := Dial(ctx, Config{Proto: "udp", Addr: srv.TCPAddr()}); err == nil {
		t.Error("dial with proto udp succeeded")
	}
	// A TCP client pointed at the HTTP listener is told so.
	c := dialT(t, Config{Proto: TCP, Addr: srv.HTTPAddr()})
	if err := c.Write([]byte("GET / HTTP/1.0\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(waitFor))
	if _, err := c.NextBody(); err == nil || !strings.Contains(err.Error(), "answered in HTTP") {
		t.Errorf("reading HTTP as TCP frames: %v", err)
	}
}

// TestDialNetRefusedAfterUpgrade: a server that takes the upgrade and then
// refuses the connection (4006, here past --max-conns-per-ip) sends op
// close and a close frame right after its 101; DialNet's error says so,
// with the code and reason, instead of only that data came early.
func TestDialNetRefusedAfterUpgrade(t *testing.T) {
	n := startNode(t, func(c *server.Config) { c.MaxConnsPerIP = 1 })
	for _, p := range []Proto{WSJSON, WSMsgpack} {
		first, err := DialNet(context.Background(), Config{Proto: p, Addr: n.WSURL()})
		if err != nil {
			t.Fatalf("%s: first dial: %v", p, err)
		}
		_, err = DialNet(context.Background(), Config{Proto: p, Addr: n.WSURL()})
		first.Close()
		if err == nil || !strings.Contains(err.Error(), "closed with 4006") {
			t.Fatalf("%s: second dial past one connection per IP: %v, want it closed with 4006 and why", p, err)
		}
		time.Sleep(100 * time.Millisecond) // the server sees the first one go
	}
}
