package replay

import (
	"encoding/binary"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

func readTestCapture(t testing.TB) *Capture {
	t.Helper()
	f, err := os.Open("testdata/capture.pcap")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := Read(f)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The committed capture (scripts/replay-testdata) holds: two WebSocket
// subscribers, 5 TCP pubs, three HTTP publishes (5 publications) and a
// GET, three Redis PUBLISHes.
func TestReadCapture(t *testing.T) {
	c := readTestCapture(t)
	want := map[string]int{
		FoundWSSub: 2, FoundTCPPub: 5, FoundHTTPPublish: 3, FoundHTTPItems: 5,
		FoundHTTPOther: 1, FoundRedisPublish: 3,
	}
	for k, v := range want {
		if c.Found[k] != v {
			t.Errorf("found %q: %d, want %d (all: %v)", k, c.Found[k], v, c.Found)
		}
	}
	if c.Unparsed() != 0 {
		t.Errorf("problems: %+v", c.Problems)
	}
	if got := c.Publications(); got != 13 {
		t.Errorf("%d publications, want 13", got)
	}
	if len(c.Streams) != 10 {
		t.Errorf("%d client streams, want 10: %+v", len(c.Streams), c.Streams)
	}
	var subs [][]string
	for _, e := range c.Events {
		if e.Topics != nil {
			subs = append(subs, e.Topics)
		}
	}
	if len(subs) != 2 || strings.Join(subs[0], ",") != "trade.XYZ,book.XYZ" || strings.Join(subs[1], ",") != "trade.XYZ,news.XYZ" {
		t.Errorf("subs %q", subs)
	}
	if !c.Streams[1].Msgpack || c.Streams[0].Msgpack {
		t.Errorf("the second subscriber is msgpack, the first JSON: %+v", c.Streams[:2])
	}
	// The Redis PUBLISHes: JSON as is, text as a JSON string, tickfan's
	// shape as its data on its topic.
	last := c.Events[len(c.Events)-3:]
	got := []string{}
	for _, e := range last {
		got = append(got, e.Pubs[0].Topic+" "+string(e.Pubs[0].Data))
	}
	if w := `news.XYZ {"h":"halt"}|news.XYZ "trading halted"|trade.XYZ {"p":1.6,"q":1}`; strings.Join(got, "|") != w {
		t.Errorf("redis publications %q, want %q", strings.Join(got, "|"), w)
	}
	for i := 1; i < len(c.Events); i++ {
		if c.Events[i].At < c.Events[i-1].At {
			t.Fatalf("events out of order at %d", i)
		}
	}
}

// extractBytes runs the stream parsers over one client stream.
func extractBytes(data []byte) *Capture {
	c := newCapture()
	s := &stream{src: "127.0.0.1:1", dst: "127.0.0.1:2", client: true, gap: -1, data: data}
	s.marks = []mark{{len(data), time.Unix(1, 0)}}
	c.start = time.Unix(0, 0)
	c.extract(s)
	c.finish()
	return c
}

func tcpFrames(t *testing.T, ms ...map[string]any) []byte {
	var out []byte
	for _, m := range ms {
		b, _ := msgpack.Marshal(m)
		out = binary.BigEndian.AppendUint32(out, uint32(len(b)))
		out = append(out, b...)
	}
	return out
}

func problemKinds(c *Capture) string {
	var ks []string
	for _, p := range c.Problems {
		ks = append(ks, p.Kind)
	}
	return strings.Join(ks, ",")
}

func TestExtractTCP(t *testing.T) {
	d := tcpFrames(t,
		map[string]any{"op": "pub", "id": 1, "t": "a.b", "d": map[string]any{"x": 1}, "k": "snap"},
		map[string]any{"op": "sub", "id": 2, "topics": []string{"a.b", "c"}},
		map[string]any{"op": "ping", "id": 3},
		map[string]any{"op": "subscribe", "id": 4},
		map[string]any{"op": "pub", "id": 5, "t": "a..b", "d": 1},
	)
	whole := len(d)
	d = append(d, tcpFrames(t, map[string]any{"op": "pub", "id": 6, "t": "a.b", "d": 1})[:9]...)
	c := extractBytes(d)
	if c.Found[FoundTCPPub] != 2 || c.Found[FoundTCPSub] != 1 || c.Found[FoundOtherCmd] != 1 {
		t.Errorf("found %v", c.Found)
	}
	if len(c.Events) != 2 || !c.Events[0].Pubs[0].Snap || !c.Events[0].Pubs[0].Msgpack || len(c.Events[1].Topics) != 2 {
		t.Errorf("events %+v", c.Events)
	}
	if k := problemKinds(c); k != "unknown op,bad topic,truncated" {
		t.Errorf("problems %q: %+v", k, c.Problems)
	}
	if c.Streams[0].Bytes != whole+9 {
		t.Errorf("bytes %d", c.Streams[0].Bytes)
	}
}

// wsClientFrame masks payload as a client must (RFC 6455, 5.3).
func wsClientFrame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		out = append(out, 0x80|byte(n))
	case n < 1<<16:
		out = append(out, 0x80|126)
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	default:
		out = append(out, 0x80|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	key := []byte{1, 2, 3, 4}
	out = append(out, key...)
	for i, c := range payload {
		out = append(out, c^key[i&3])
	}
	return out
}

const upgrade = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: a\r\n\r\n"

func TestExtractWebSocket(t *testing.T) {
	sub := []byte(`{"op":"sub","id":1,"topics":["a.b"]}`)
	long := []byte(`{"op":"pub","id":2,"t":"a.b","d":"` + strings.Repeat("x", 300) + `"}`)
	d := []byte(upgrade)
	d = append(d, wsClientFrame(false, opText, sub[:10])...)
	d = append(d, wsClientFrame(true, 0x9, []byte("ping"))...) // a ping between fragments
	d = append(d, wsClientFrame(true, opCont, sub[10:])...)
	d = append(d, wsClientFrame(true, opText, long)...)
	mp, _ := msgpack.Marshal(map[string]any{"op": "pub", "id": 3, "t": "a.b", "d": 7})
	d = append(d, wsClientFrame(true, opBinary, mp)...)
	d = append(d, wsClientFrame(true, opText, []byte(`{"op":"sub","id":4,"topics":["a.b"]}`))[:6]...)
	c := extractBytes(d)
	if c.Found[FoundWSSub] != 1 || c.Found[FoundWSPub] != 2 {
		t.Errorf("found %v", c.Found)
	}
	if len(c.Events) != 3 || len(c.Events[1].Pubs[0].Data) != 302 || !c.Events[2].Pubs[0].Msgpack {
		t.Errorf("events %+v", c.Events)
	}
	if k := problemKinds(c); k != "truncated" {
		t.Errorf("problems %q", k)
	}
	// An unmasked frame is the server's, not a client's.
	c = extractBytes(append([]byte(upgrade), 0x81, 0x02, '{', '}'))
	if k := problemKinds(c); k != "bad frame" || !strings.Contains(c.Problems[0].Firsts[0], "unmasked") {
		t.Errorf("unmasked: %+v", c.Problems)
	}
}

func TestExtractHTTP(t *testing.T) {
	single := `{"t":"a.b","d":{"p":1},"k":"snap"}`
	batch := `{"batch":[{"t":"a.b","d":1},{"t":"c","d":"x"}]}`
	d := "POST /api/publish HTTP/1.1\r\nContent-Length: " + itoa(len(single)) + "\r\n\r\n" + single +
		"GET /metrics HTTP/1.1\r\n\r\n" +
		"POST /api/publish HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + itoh(10) + "\r\n" + batch[:10] + "\r\n" + itoh(len(batch)-10) + "\r\n" + batch[10:] + "\r\n0\r\n\r\n" +
		"POST /api/publish HTTP/1.1\r\nContent-Length: 12\r\n\r\n" + `{"batch":[]}` +
		"POST /api/publish HTTP/1.1\r\nContent-Length: 50\r\n\r\n{"
	c := extractBytes([]byte(d))
	if c.Found[FoundHTTPPublish] != 3 || c.Found[FoundHTTPItems] != 3 || c.Found[FoundHTTPOther] != 1 {
		t.Errorf("found %v", c.Found)
	}
	if len(c.Events) != 2 || !c.Events[0].Pubs[0].Snap || len(c.Events[1].Pubs) != 2 || string(c.Events[1].Pubs[1].Data) != `"x"` {
		t.Errorf("events %+v", c.Events)
	}
	if k := problemKinds(c); k != "bad publish body,truncated" {
		t.Errorf("problems %q: %+v", k, c.Problems)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
func itoh(n int) string { return strconv.FormatInt(int64(n), 16) }

func resp(args ...string) string {
	s := "*" + itoa(len(args)) + "\r\n"
	for _, a := range args {
		s += "$" + itoa(len(a)) + "\r\n" + a + "\r\n"
	}
	return s
}

func TestExtractRedis(t *testing.T) {
	d := resp("HELLO", "3") + resp("publish", "news.x", `[1,2]`) + resp("SPUBLISH", "tf:{a.b}", "ep\n12\nsm\n\x81\xa1q\x01") +
		resp("PUBLISH", "tf:{a.b}", "plain") + resp("PUBLISH", "bad channel", "1") + "*3\r\n$7\r\nPUBLISH\r\n$3\r\nabc"
	c := extractBytes([]byte(d))
	if c.Found[FoundRedisPublish] != 4 || c.Found[FoundRedisOther] != 1 {
		t.Errorf("found %v", c.Found)
	}
	if len(c.Events) != 3 {
		t.Fatalf("events %+v", c.Events)
	}
	p := c.Events[1].Pubs[0]
	if p.Topic != "a.b" || !p.Msgpack || !p.Snap || string(p.Data) != "\x81\xa1q\x01" {
		t.Errorf("tickfan shape: %+v", p)
	}
	if p := c.Events[2].Pubs[0]; p.Topic != "a.b" || string(p.Data) != `"plain"` {
		t.Errorf("plain message on a tickfan channel: %+v", p)
	}
	if k := problemKinds(c); k != "bad topic,truncated" {
		t.Errorf("problems %q: %+v", k, c.Problems)
	}
}

func TestExtractNotTickfan(t *testing.T) {
	c := extractBytes([]byte("SSH-2.0-OpenSSH_9.6\r\n"))
	if k := problemKinds(c); k != "not tickfan" || c.Streams[0].Source != "" {
		t.Errorf("problems %q: %+v", k, c.Streams)
	}
	// The server's side of a connection whose handshake was not captured.
	c2 := newCapture()
	s := &stream{gap: -1, data: []byte("HTTP/1.1 200 OK\r\n\r\n")}
	c2.extract(s)
	if len(c2.Streams) != 0 || c2.ServerBytes != 19 {
		t.Errorf("server side counted as a client: %+v", c2)
	}
}

// FuzzExtract feeds arbitrary client streams to every parser: none may
// panic, and every byte is either a client stream's or the server's.
func FuzzExtract(f *testing.F) {
	f.Add([]byte(resp("PUBLISH", "a", "b")))
	f.Add([]byte(upgrade + string(wsClientFrame(true, opText, []byte(`{"op":"sub","id":1,"topics":["a"]}`)))))
	f.Add([]byte("POST /api/publish HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"))
	f.Add([]byte("POST /api/publish HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"))
	f.Add([]byte{0, 0, 0, 5, 0x81, 0xa2, 'o', 'p', 0xc0})
	f.Fuzz(func(t *testing.T, data []byte) {
		c := extractBytes(data)
		if c.ClientBytes+c.ServerBytes != len(data) {
			t.Fatalf("%d + %d bytes of %d", c.ClientBytes, c.ServerBytes, len(data))
		}
	})
}
