package e2e

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/vmihailenco/msgpack/v5"
)

// readTimeout bounds every wait for a message: a test fails, it never hangs.
const readTimeout = 5 * time.Second

// maxFrame is the server's default --max-frame.
const maxFrame = 1 << 20

// Subprotocol names of PROTOCOL.md.
const (
	protoJSON    = "tickfan.v1.json"
	protoMsgpack = "tickfan.v1.msgpack"
)

// transport is one way a client talks to the server. Every protocol test
// runs over each of them.
type transport struct {
	name string
	dial func(t testing.TB, n *node) *client
}

var transports = []transport{
	{"ws-json", func(t testing.TB, n *node) *client { return dialWS(t, n, protoJSON) }},
	{"ws-msgpack", func(t testing.TB, n *node) *client { return dialWS(t, n, protoMsgpack) }},
	{"tcp", dialTCP},
}

// eachTransport runs f as one subtest per transport.
func eachTransport(t *testing.T, f func(t *testing.T, tr transport)) {
	t.Helper()
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) { f(t, tr) })
	}
}

// wire carries whole message bodies in one transport's framing.
type wire interface {
	write(body []byte) error
	read(timeout time.Duration) ([]byte, error)
	close() error
}

// wsWire is a gorilla/websocket connection; typ is the frame type the
// negotiated subprotocol uses (text for JSON, binary for msgpack).
type wsWire struct {
	c   *websocket.Conn
	typ int
}

func (w *wsWire) write(body []byte) error {
	_ = w.c.SetWriteDeadline(time.Now().Add(readTimeout))
	return w.c.WriteMessage(w.typ, body)
}

func (w *wsWire) read(timeout time.Duration) ([]byte, error) {
	_ = w.c.SetReadDeadline(time.Now().Add(timeout))
	typ, b, err := w.c.ReadMessage()
	if err != nil {
		return nil, err
	}
	if typ != w.typ {
		return nil, fmt.Errorf("got a %s frame %q, the subprotocol uses %s frames", frameType(typ), b, frameType(w.typ))
	}
	return b, nil
}

func (w *wsWire) close() error { return w.c.Close() }

func frameType(typ int) string {
	switch typ {
	case websocket.TextMessage:
		return "text"
	case websocket.BinaryMessage:
		return "binary"
	}
	return fmt.Sprintf("type-%d", typ)
}

// tcpWire is the TCP transport: a 4-byte big-endian length, then the body.
type tcpWire struct {
	c net.Conn
	r *bufio.Reader
}

func (w *tcpWire) write(body []byte) error {
	b := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(body)), uint32(len(body)))
	_ = w.c.SetWriteDeadline(time.Now().Add(readTimeout))
	_, err := w.c.Write(append(b, body...))
	return err
}

func (w *tcpWire) read(timeout time.Duration) ([]byte, error) {
	_ = w.c.SetReadDeadline(time.Now().Add(timeout))
	var hdr [4]byte
	if _, err := io.ReadFull(w.r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if string(hdr[:]) == "HTTP" {
		return nil, errors.New("server answered in HTTP: this port is the WebSocket listener")
	}
	if n == 0 || n > maxFrame {
		return nil, fmt.Errorf("server sent a frame length of %d", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(w.r, b); err != nil {
		return nil, fmt.Errorf("frame body of %d bytes: %w", n, err)
	}
	return b, nil
}

func (w *tcpWire) close() error { return w.c.Close() }

// format is the message coding of a connection.
type format struct {
	marshal   func(v any) ([]byte, error)
	unmarshal func(b []byte) (any, error)
}

var jsonFormat = format{marshal: json.Marshal, unmarshal: decodeJSON}

var msgpackFormat = format{marshal: msgpack.Marshal, unmarshal: decodeMsgpack}

// decodeJSON decodes exactly one JSON value, numbers kept exact.
func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("json %q: %w", b, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("json %q: more after the first value", b)
	}
	return normalize(v), nil
}

// decodeMsgpack decodes exactly one msgpack value with string map keys.
func decodeMsgpack(b []byte) (any, error) {
	r := bytes.NewReader(b)
	dec := msgpack.NewDecoder(r)
	dec.UseLooseInterfaceDecoding(true)
	dec.SetMapDecoder(func(d *msgpack.Decoder) (any, error) { return d.DecodeMap() })
	v, err := dec.DecodeInterface()
	if err != nil {
		return nil, fmt.Errorf("msgpack % x: %w", b, err)
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("msgpack % x: %d bytes after the first value", b, r.Len())
	}
	return normalize(v), nil
}

// normalize brings a decoded or hand-built value to one form so that JSON
// and msgpack compare equal: integers as int64 (uint64 above MaxInt64),
// floats as float64, maps as map[string]any, lists as []any.
func normalize(v any) any {
	switch v := v.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		if u, err := parseUint(string(v)); err == nil {
			return u
		}
		f, _ := v.Float64()
		return f
	case int, int8, int16, int32:
		return reflect.ValueOf(v).Int()
	case uint, uint8, uint16, uint32, uint64:
		u := reflect.ValueOf(v).Uint()
		if u > math.MaxInt64 {
			return u
		}
		return int64(u)
	case float32:
		return float64(v)
	case []byte:
		return string(v)
	case msg:
		return normalize(map[string]any(v))
	case map[string]any:
		return normalizeMap(v)
	case map[any]any:
		return normalizeMap(v)
	case []any:
		return normalizeList(v)
	case []map[string]any:
		return normalizeList(v)
	}
	return v
}

// normalizeMap normalizes m's values into a map keyed by m's keys printed.
func normalizeMap[K comparable](m map[K]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, x := range m {
		out[fmt.Sprint(k)] = normalize(x)
	}
	return out
}

// normalizeList normalizes each element of xs into a list.
func normalizeList[T any](xs []T) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = normalize(x)
	}
	return out
}

func parseUint(s string) (uint64, error) {
	var u uint64
	_, err := fmt.Sscan(s, &u)
	if err != nil || fmt.Sprint(u) != s {
		return 0, errors.New("not a uint64")
	}
	return u, nil
}

// msg is one decoded message: a map, values normalized.
type msg map[string]any

func (m msg) String() string { return show(map[string]any(m)) }

// show prints a decoded value in JSON, keys sorted, for failure messages.
func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		b = fmt.Appendf(nil, "%#v", v)
	}
	const most = 300
	if len(b) > most {
		return fmt.Sprintf("%s…(%d bytes)", b[:most], len(b))
	}
	return string(b)
}

// hasKeys reports whether m has exactly the given keys.
func hasKeys(m map[string]any, want ...string) bool {
	slices.Sort(want)
	return slices.Equal(slices.Sorted(maps.Keys(m)), want)
}

// asUint returns v as an unsigned integer, if it is one.
func asUint(v any) (uint64, bool) {
	switch v := v.(type) {
	case int64:
		if v >= 0 {
			return uint64(v), true
		}
	case uint64:
		return v, true
	}
	return 0, false
}

// client is one connection to the server in one transport.
type client struct {
	name string
	w    wire
	f    format
	ids  atomic.Uint64
}

func dialWS(t testing.TB, n *node, proto string) *client {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: readTimeout, Subprotocols: []string{proto}}
	c, resp, err := d.Dial("ws://"+n.srv.WSAddr()+"/ws", nil)
	if err != nil {
		t.Fatalf("dial ws %s: %v", proto, err)
	}
	if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != proto {
		c.Close()
		t.Fatalf("offered subprotocol %s, server chose %q", proto, got)
	}
	cl := &client{name: "ws-json", w: &wsWire{c: c, typ: websocket.TextMessage}, f: jsonFormat}
	if proto == protoMsgpack {
		cl.name, cl.w, cl.f = "ws-msgpack", &wsWire{c: c, typ: websocket.BinaryMessage}, msgpackFormat
	}
	t.Cleanup(cl.close)
	return cl
}

func dialTCP(t testing.TB, n *node) *client {
	t.Helper()
	c := dialConn(t, "tcp", n.srv.TCPAddr())
	return &client{name: "tcp", w: &tcpWire{c: c, r: bufio.NewReader(c)}, f: msgpackFormat}
}

// dialConn opens a TCP connection to addr that is closed when the test
// ends; what names it in a failure.
func dialConn(t testing.TB, what, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, readTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", what, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func (c *client) close() { _ = c.w.close() }

// id returns a fresh request id.
func (c *client) id() uint64 { return c.ids.Add(1) }

// send encodes m in the connection's format and sends it.
func (c *client) send(m map[string]any) error {
	b, err := c.f.marshal(m)
	if err != nil {
		return fmt.Errorf("encode %v: %w", m, err)
	}
	return c.w.write(b)
}

// sendRaw sends body as one message, whatever it holds.
func (c *client) sendRaw(body []byte) error { return c.w.write(body) }

// recv reads the next message, which must be a map.
func (c *client) recv() (msg, error) { return c.recvWithin(readTimeout) }

// recvWithin is recv with a deadline of its own.
func (c *client) recvWithin(d time.Duration) (msg, error) {
	b, err := c.w.read(d)
	if err != nil {
		return nil, fmt.Errorf("%s read: %w", c.name, err)
	}
	v, err := c.f.unmarshal(b)
	if err != nil {
		return nil, fmt.Errorf("%s: undecodable message: %w", c.name, err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: message is not a map: %s", c.name, show(v))
	}
	return msg(m), nil
}

func (c *client) mustSend(t testing.TB, m map[string]any) {
	t.Helper()
	if err := c.send(m); err != nil {
		t.Fatalf("%s send %s: %v", c.name, show(m), err)
	}
}

func (c *client) mustSendRaw(t testing.TB, body []byte) {
	t.Helper()
	if err := c.sendRaw(body); err != nil {
		t.Fatalf("%s send raw %q: %v", c.name, body, err)
	}
}

// next returns the next message or fails the test.
func (c *client) next(t testing.TB) msg {
	t.Helper()
	m, err := c.recv()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// do sends cmd with a fresh id and returns the next message, which must be
// its reply: {"id": id, "res": {...}} or {"id": id, "err": {...}}.
func (c *client) do(t testing.TB, cmd map[string]any) msg {
	t.Helper()
	id := c.id()
	cmd["id"] = id
	c.mustSend(t, cmd)
	m := c.next(t)
	if err := checkReply(m, id); err != nil {
		t.Fatalf("%s: %s → %v", c.name, show(cmd), err)
	}
	return m
}

// ok runs cmd and returns its result, failing on an error reply.
func (c *client) ok(t testing.TB, cmd map[string]any) map[string]any {
	t.Helper()
	m := c.do(t, cmd)
	res, isRes := m["res"].(map[string]any)
	if !isRes {
		t.Fatalf("%s: %s → %s, want a result", c.name, show(cmd), m)
	}
	return res
}

// fail runs cmd and checks that it is refused with code.
func (c *client) fail(t testing.TB, cmd map[string]any, code int) {
	t.Helper()
	m := c.do(t, cmd)
	if err := checkErr(m, code); err != nil {
		t.Fatalf("%s: %s → %v", c.name, show(cmd), err)
	}
}

// alive checks the connection still answers a ping.
func (c *client) alive(t testing.TB) {
	t.Helper()
	if res := c.ok(t, map[string]any{"op": "ping"}); len(res) != 0 {
		t.Fatalf("%s: ping → res %s, want {}", c.name, show(res))
	}
}

// checkReply checks that m is a reply to request id, with exactly the
// shape PROTOCOL.md gives.
func checkReply(m msg, id uint64) error {
	got, ok := asUint(m["id"])
	if !ok || got != id {
		return fmt.Errorf("got %s, want the reply to id %d", m, id)
	}
	switch {
	case hasKeys(m, "id", "res"):
		if _, ok := m["res"].(map[string]any); !ok {
			return fmt.Errorf("reply %s: res is not a map", m)
		}
	case hasKeys(m, "id", "err"):
		if err := checkErrShape(m); err != nil {
			return err
		}
	default:
		return fmt.Errorf("reply %s: want exactly the keys id and res, or id and err", m)
	}
	return nil
}

// checkErrShape checks m["err"] is {"code": int, "msg": string}.
func checkErrShape(m msg) error {
	e, ok := m["err"].(map[string]any)
	if !ok || !hasKeys(e, "code", "msg") {
		return fmt.Errorf("%s: err is not {\"code\":..,\"msg\":..}", m)
	}
	if _, ok := asUint(e["code"]); !ok {
		return fmt.Errorf("%s: err.code is not an integer", m)
	}
	if _, ok := e["msg"].(string); !ok {
		return fmt.Errorf("%s: err.msg is not a string", m)
	}
	return nil
}

// checkErr checks that m is an error reply with code.
func checkErr(m msg, code int) error {
	if _, isErr := m["err"]; !isErr {
		return fmt.Errorf("got %s, want error %d", m, code)
	}
	if err := checkErrShape(m); err != nil {
		return err
	}
	if got, _ := asUint(m["err"].(map[string]any)["code"]); got != uint64(code) {
		return fmt.Errorf("got %s, want error code %d", m, code)
	}
	return nil
}

// pos is a position in a topic: {"e":..,"s":..}.
type pos struct {
	E string
	S uint64
}

func (p pos) since() map[string]any { return map[string]any{"e": p.E, "s": p.S} }

// asPos reads a {"e":..,"s":..} map that must have exactly those keys
// (plus extra, which the caller names).
func asPos(v any, extra ...string) (pos, error) {
	m, ok := v.(map[string]any)
	if !ok || !hasKeys(m, append([]string{"e", "s"}, extra...)...) {
		return pos{}, fmt.Errorf("%s is not a map with exactly the keys e, s %v", show(v), extra)
	}
	e, eok := m["e"].(string)
	s, sok := asUint(m["s"])
	if !eok || !sok || e == "" {
		return pos{}, fmt.Errorf("%s: e must be a non-empty string and s an unsigned integer", show(v))
	}
	return pos{E: e, S: s}, nil
}

// subResult is one topic's entry of a sub reply.
type subResult struct {
	pos
	Rec bool
}

// sub subscribes to topics (with since, when not nil) and returns the
// reply's entries, checking the reply names exactly those topics.
func (c *client) sub(t testing.TB, topics []string, since map[string]pos) map[string]subResult {
	t.Helper()
	cmd := map[string]any{"op": "sub", "topics": topics}
	if since != nil {
		s := make(map[string]any, len(since))
		for k, p := range since {
			s[k] = p.since()
		}
		cmd["since"] = s
	}
	res := c.ok(t, cmd)
	if !hasKeys(res, topics...) {
		t.Fatalf("%s: sub %v → res %s, want exactly those topics as keys", c.name, topics, show(res))
	}
	out := make(map[string]subResult, len(topics))
	for _, name := range topics {
		p, err := asPos(res[name], "rec")
		if err != nil {
			t.Fatalf("%s: sub %v → %s: topic %s: %v", c.name, topics, show(res), name, err)
		}
		rec, ok := res[name].(map[string]any)["rec"].(bool)
		if !ok {
			t.Fatalf("%s: sub → %s: rec of %s is not a bool", c.name, show(res), name)
		}
		out[name] = subResult{pos: p, Rec: rec}
	}
	return out
}

// sub1 subscribes to one topic.
func (c *client) sub1(t testing.TB, name string, since *pos) subResult {
	t.Helper()
	var s map[string]pos
	if since != nil {
		s = map[string]pos{name: *since}
	}
	return c.sub(t, []string{name}, s)[name]
}

// pub publishes with the pub command and returns the reply's position.
func (c *client) pub(t testing.TB, name string, d any, snap bool) pos {
	t.Helper()
	cmd := map[string]any{"op": "pub", "t": name, "d": d}
	if snap {
		cmd["k"] = "snap"
	}
	res := c.ok(t, cmd)
	p, err := asPos(res)
	if err != nil {
		t.Fatalf("%s: pub %s → %v", c.name, name, err)
	}
	return p
}

// pubMsg is a publication as a client receives it.
type pubMsg struct {
	T    string
	S    uint64
	D    any
	Snap bool
}

// asPub reads a publication: exactly {"t","s","d"} plus "k":"snap" on a
// snapshot.
func asPub(m map[string]any) (pubMsg, error) {
	var p pubMsg
	switch {
	case hasKeys(m, "t", "s", "d"):
	case hasKeys(m, "t", "s", "d", "k"):
		if m["k"] != "snap" {
			return p, fmt.Errorf("publication %s: k is %s, want absent or \"snap\"", show(m), show(m["k"]))
		}
		p.Snap = true
	default:
		return p, fmt.Errorf("got %s, want a publication {\"t\",\"s\",\"d\"[,\"k\"]}", show(m))
	}
	var ok bool
	if p.T, ok = m["t"].(string); !ok {
		return p, fmt.Errorf("publication %s: t is not a string", show(m))
	}
	if p.S, ok = asUint(m["s"]); !ok {
		return p, fmt.Errorf("publication %s: s is not an unsigned integer", show(m))
	}
	p.D = m["d"]
	return p, nil
}

// expectPub checks that m is the publication of topic at seq with payload d
// (normalized), a snapshot when snap is set.
func expectPub(m map[string]any, topic string, seq uint64, d any, snap bool) error {
	p, err := asPub(m)
	if err != nil {
		return err
	}
	if p.T != topic || p.S != seq || p.Snap != snap {
		kind := "update"
		if snap {
			kind = "snapshot"
		}
		return fmt.Errorf("got %s, want the %s of %s at s %d", show(m), kind, topic, seq)
	}
	if want := normalize(d); !reflect.DeepEqual(p.D, want) {
		return fmt.Errorf("publication %s: d is %s, want %s", show(m), show(p.D), show(want))
	}
	return nil
}

// nextPub reads the next message and checks it is the given publication.
func (c *client) nextPub(t testing.TB, topic string, seq uint64, d any, snap bool) {
	t.Helper()
	if err := expectPub(c.next(t), topic, seq, d, snap); err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
}

// nextReset reads the next message and checks it is exactly
// {"op":"reset","t":topic,"e":e,"s":seq}.
func (c *client) nextReset(t testing.TB, topic, e string, seq uint64) {
	t.Helper()
	m := c.next(t)
	want := map[string]any{"op": "reset", "t": topic, "e": e, "s": int64(seq)}
	if !reflect.DeepEqual(map[string]any(m), want) {
		t.Fatalf("%s: got %s, want %s", c.name, m, show(want))
	}
}

// httpClient is the HTTP client of the tests: no proxy, bounded.
var httpClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 16}}

// payload is a distinct, JSON-compatible payload for publication i.
func payload(tag string, i int) map[string]any {
	return map[string]any{"tag": tag, "i": i, "px": float64(i) + 0.25, "side": strings.Repeat("b", i%3+1)}
}

// The close codes of PROTOCOL.md ("Closing"), written here rather than
// taken from the server's packages, so that the suite holds the server to
// the document.
const (
	closeIdle           = 4001
	closeTokenExpired   = 4002
	closeBadRequest     = 4004
	closeSlowClient     = 4005
	closeTooManyConns   = 4006
	closeServerDraining = 4007
)

// writeBurst frames msgs (TCP, msgpack) into one buffer and writes it in
// one write on another goroutine, so that the replies can be read while
// the write goes on; the channel gets the write's error.
func (c *client) writeBurst(msgs []map[string]any) (<-chan error, error) {
	var buf []byte
	for _, m := range msgs {
		body, err := msgpack.Marshal(m)
		if err != nil {
			return nil, err
		}
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(body)))
		buf = append(buf, body...)
	}
	tw := c.w.(*tcpWire)
	werr := make(chan error, 1)
	go func() {
		_ = tw.c.SetWriteDeadline(time.Now().Add(30 * time.Second))
		_, err := tw.c.Write(buf)
		werr <- err
	}()
	return werr, nil
}
