package server

import (
	"strings"
	"testing"

	"github.com/tickfan/tickfan/server/reactor"
)

// orderedSocket is a socket that also notes, in a log shared by several,
// which socket each write went to.
type orderedSocket struct {
	socket
	name string
	log  *[]string
}

func (s *orderedSocket) Writev(bs [][]byte) (int, error) {
	*s.log = append(*s.log, s.name)
	return s.socket.Writev(bs)
}

func (s *orderedSocket) Write(b []byte) (int, error) { return s.Writev([][]byte{b}) }

// TestPublicationWrittenBeforeItsAck: a pub read from a client's socket is
// delivered in the same loop turn, and the subscriber's socket is written
// before the publisher's acknowledgement: a write to an idle reader costs
// the loop that reader's wake-up, and the publication's latency is what
// counts.
func TestPublicationWrittenBeforeItsAck(t *testing.T) {
	_, l := testServer(t, Config{AnonymousPub: "px.>", HistorySize: 10})
	var log []string
	sub := &orderedSocket{name: "sub", log: &log}
	sc := newConn(sub, l, reactor.WebSocket)
	sc.state = stOpen
	sc.handle([]byte(`{"op":"sub","id":1,"topics":["px.a"]}`))
	l.flush()
	pub := &orderedSocket{name: "pub", log: &log}
	c := newConn(pub, l, reactor.WebSocket)
	c.state = stOpen
	log = log[:0]
	sub.got, pub.got = nil, nil

	l.Enter()
	c.handle([]byte(`{"op":"pub","id":7,"t":"px.a","d":1}`))
	c.l.flush() // as Data does: within Enter and Leave it waits for Leave
	l.Leave()

	if strings.Join(log, ",") != "sub,pub" {
		t.Fatalf("writes went %v, want the delivery to sub, then the ack to pub", log)
	}
	if m := sub.messages(t); len(m) != 1 || m[0]["s"] != float64(1) {
		t.Fatalf("subscriber got %v", m)
	}
	if m := pub.messages(t); len(m) != 1 || m[0]["id"] != float64(7) {
		t.Fatalf("publisher got %v", m)
	}
}
