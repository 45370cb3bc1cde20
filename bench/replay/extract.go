package replay

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/textproto"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tickfan/tickfan/codec"
	"github.com/tickfan/tickfan/topic"
)

// Source is the protocol a client stream spoke.
type Source string

// The client streams Read recognises.
const (
	SourceTCP   Source = "tcp"   // tickfan TCP frames
	SourceWS    Source = "ws"    // WebSocket after an HTTP upgrade
	SourceHTTP  Source = "http"  // HTTP/1.1 requests
	SourceRedis Source = "redis" // RESP commands to a Redis server
)

// The kinds of message Found counts.
const (
	FoundTCPPub       = "tcp pub"           // pub commands in TCP frames
	FoundTCPSub       = "tcp sub"           // sub commands in TCP frames
	FoundWSPub        = "ws pub"            // pub commands in WebSocket frames
	FoundWSSub        = "ws sub"            // sub commands in WebSocket frames
	FoundOtherCmd     = "other commands"    // auth, unsub, ping, pull, refresh: not replayed
	FoundHTTPPublish  = "http publish"      // POST /api/publish requests
	FoundHTTPItems    = "http publications" // publications in them (a batch holds several)
	FoundHTTPOther    = "other http"        // other requests (GET /metrics...): not replayed
	FoundRedisPublish = "redis publish"     // PUBLISH and SPUBLISH commands
	FoundRedisOther   = "other redis"       // other Redis commands: not replayed
)

// Publication is one publication to replay.
type Publication struct {
	Topic   string
	Data    []byte // one value: msgpack when Msgpack, else JSON
	Msgpack bool
	Snap    bool
}

// Event is one thing a captured client did that replay does again: a
// publish (one publication, or a batch) or a sub.
type Event struct {
	At     time.Duration // since the capture's first packet
	Stream int           // the client stream it came from (Capture.Streams)
	Pubs   []Publication // a publish: one, or an HTTP batch's items
	Topics []string      // a sub: its topics (its since is left out: the target has epochs of its own)
}

// Stream describes one client stream of the capture.
type Stream struct {
	ID       int
	Client   string // host:port of the client
	Server   string // host:port it spoke to
	Source   Source // "" when it was not tickfan's
	Msgpack  bool   // WebSocket: the client sent binary (msgpack) frames
	Bytes    int
	Events   int
	Pubs     int
	Subs     int
	Problems int
}

// Problem is one reason something in the capture was not replayed.
type Problem struct {
	Kind   string // "truncated", "unknown op", "not tickfan", ...
	Count  int
	Firsts []string // the first few occurrences, with their stream
}

// maxFirsts is how many occurrences of each problem are kept as examples.
const maxFirsts = 3

// Capture is what Read found in a capture.
type Capture struct {
	Packets     int
	TCPPackets  int
	NonTCP      int
	Span        time.Duration // first to last event
	ClientBytes int           // bytes of the client streams
	ServerBytes int           // bytes the servers sent (counted, not parsed)
	Streams     []Stream      // client streams, in order of their first byte
	Events      []Event       // in the order they were captured
	Found       map[string]int
	Problems    []Problem // by kind, in order of first occurrence

	start    time.Time
	problems map[string]*Problem
}

func newCapture() *Capture {
	return &Capture{Found: map[string]int{}, problems: map[string]*Problem{}}
}

func (c *Capture) problem(kind, what string) {
	p := c.problems[kind]
	if p == nil {
		c.Problems = append(c.Problems, Problem{Kind: kind})
		p = &c.Problems[len(c.Problems)-1]
		c.problems[kind] = p
	}
	p.Count++
	if len(p.Firsts) < maxFirsts {
		p.Firsts = append(p.Firsts, what)
	}
}

// Unparsed is the total count of problems.
func (c *Capture) Unparsed() int {
	n := 0
	for _, p := range c.Problems {
		n += p.Count
	}
	return n
}

// Publications counts the publications of the events.
func (c *Capture) Publications() int {
	n := 0
	for _, e := range c.Events {
		n += len(e.Pubs)
	}
	return n
}

// finish orders the events by time and fixes the problem pointers (the
// slice may have moved).
func (c *Capture) finish() {
	sort.SliceStable(c.Events, func(i, j int) bool { return c.Events[i].At < c.Events[j].At })
	if n := len(c.Events); n > 0 {
		c.Span = c.Events[n-1].At - c.Events[0].At
	}
	c.problems = nil
}

// extractor parses one client stream.
type extractor struct {
	c   *Capture
	s   *stream
	st  *Stream
	tag string // "stream 3 10.0.0.1:5555->10.0.0.2:8081", for problems
}

func (x *extractor) problem(kind, format string, a ...any) {
	x.st.Problems++
	x.c.problem(kind, x.tag+": "+fmt.Sprintf(format, a...))
}

func (x *extractor) event(end int, ev Event) {
	ev.At = x.s.seenAt(end).Sub(x.c.start)
	ev.Stream = x.st.ID
	x.st.Events++
	x.c.Events = append(x.c.Events, ev)
}

// extract recognises a stream by its first bytes and parses it.
func (c *Capture) extract(s *stream) {
	if len(s.data) == 0 && s.dropped == 0 {
		return
	}
	if s.server || (!s.client && looksLikeServer(s.data)) {
		c.ServerBytes += len(s.data) + s.dropped
		return
	}
	c.ClientBytes += len(s.data) + s.dropped
	c.Streams = append(c.Streams, Stream{ID: len(c.Streams), Client: s.src, Server: s.dst, Bytes: len(s.data) + s.dropped})
	x := &extractor{c: c, s: s, st: &c.Streams[len(c.Streams)-1]}
	x.tag = fmt.Sprintf("stream %d %s->%s", x.st.ID, s.src, s.dst)
	if s.midway {
		x.problem("capture began mid-connection", "its start is missing; not parsed")
		return
	}
	d := s.data
	switch {
	case isHTTPRequest(d) && isUpgrade(d):
		x.st.Source = SourceWS
		x.websocket(d)
	case isHTTPRequest(d):
		x.st.Source = SourceHTTP
		x.http(d)
	case len(d) > 0 && d[0] == '*':
		x.st.Source = SourceRedis
		x.redis(d)
	case looksLikeTCPFrame(d):
		x.st.Source = SourceTCP
		x.tcp(d)
	default:
		x.problem("not tickfan", "first bytes %q", clip(d, 16))
		return
	}
	if s.gap >= 0 {
		x.problem("packets missing", "a hole after %d bytes; the rest (%d bytes) not parsed", s.gap, s.dropped)
	} else if s.dropped > 0 {
		x.problem("stream too long", "%d bytes past %d not parsed", s.dropped, maxStreamBytes)
	}
}

// looksLikeServer guesses the side of a stream whose handshake was not
// captured: an HTTP response, RESP replies, or unmasked WebSocket frames.
func looksLikeServer(d []byte) bool {
	return bytes.HasPrefix(d, []byte("HTTP/")) || (len(d) > 0 && strings.IndexByte("+-:$_,#>%~", d[0]) >= 0)
}

var methods = []string{"GET ", "POST ", "PUT ", "DELETE ", "HEAD ", "OPTIONS ", "PATCH "}

func isHTTPRequest(d []byte) bool {
	for _, m := range methods {
		if bytes.HasPrefix(d, []byte(m)) {
			return true
		}
	}
	return false
}

func isUpgrade(d []byte) bool {
	end := bytes.Index(d, []byte("\r\n\r\n"))
	if end < 0 {
		end = len(d)
	}
	return bytes.Contains(bytes.ToLower(d[:end]), []byte("upgrade: websocket"))
}

// looksLikeTCPFrame: a length in range, then a msgpack map.
func looksLikeTCPFrame(d []byte) bool {
	if len(d) < 5 {
		return false
	}
	n := binary.BigEndian.Uint32(d)
	b := d[4]
	return n > 0 && n <= 1<<24 && (b&0xf0 == 0x80 || b == 0xde || b == 0xdf)
}

func clip(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// tcp parses tickfan TCP frames: a 4-byte big-endian length, then a
// msgpack map (PROTOCOL.md, Ports and transports).
func (x *extractor) tcp(d []byte) {
	off := 0
	for off < len(d) {
		if len(d)-off < 4 {
			x.problem("truncated", "%d bytes of a length prefix at the end", len(d)-off)
			return
		}
		n := int(binary.BigEndian.Uint32(d[off:]))
		if n == 0 || n > 1<<24 {
			x.problem("bad frame", "length %d at offset %d; the rest not parsed", n, off)
			return
		}
		if len(d)-off-4 < n {
			x.problem("truncated", "frame of %d bytes at offset %d, %d captured", n, off, len(d)-off-4)
			return
		}
		off += 4 + n
		x.command(codec.TCPMsgpack, d[off-n:off], off)
	}
}

// command decodes one client command and keeps a pub or a sub.
func (x *extractor) command(f codec.Format, body []byte, end int) {
	var cmd codec.Command
	if err := codec.Decode(f, body, &cmd); err != nil && cmd.Op == "" {
		x.problem("bad command", "%v", err)
		return
	} else if err != nil && (cmd.Op == "pub" || cmd.Op == "sub") {
		x.problem("bad command", "%s: %v", cmd.Op, err)
		return
	}
	ws := f != codec.TCPMsgpack
	switch cmd.Op {
	case "pub":
		x.c.Found[pick(ws, FoundWSPub, FoundTCPPub)]++
		if err := topic.ValidName(cmd.Topic); err != nil {
			x.problem("bad topic", "pub %q: %v", cmd.Topic, err)
			return
		}
		if cmd.Data == nil {
			x.problem("bad command", "pub %s without d", cmd.Topic)
			return
		}
		x.st.Pubs++
		x.event(end, Event{Pubs: []Publication{{Topic: cmd.Topic, Data: cmd.Data, Msgpack: cmd.DataMsgpack, Snap: cmd.Kind == "snap"}}})
	case "sub":
		x.c.Found[pick(ws, FoundWSSub, FoundTCPSub)]++
		if len(cmd.Topics) == 0 {
			x.problem("bad command", "sub without topics")
			return
		}
		x.st.Subs++
		x.event(end, Event{Topics: append([]string(nil), cmd.Topics...)})
	case "auth", "unsub", "ping", "pull", "refresh":
		x.c.Found[FoundOtherCmd]++
	default:
		x.problem("unknown op", "%q", cmd.Op)
	}
}

func pick(ws bool, a, b string) string {
	if ws {
		return a
	}
	return b
}

// http parses HTTP/1.1 requests one after another (keep-alive).
func (x *extractor) http(d []byte) {
	off := 0
	for off < len(d) {
		hdrEnd := bytes.Index(d[off:], []byte("\r\n\r\n"))
		if hdrEnd < 0 {
			x.problem("truncated", "HTTP request head of %d bytes without its end", len(d)-off)
			return
		}
		head := d[off : off+hdrEnd]
		lineEnd := bytes.Index(head, []byte("\r\n"))
		if lineEnd < 0 {
			lineEnd = len(head)
		}
		parts := strings.Fields(string(head[:lineEnd]))
		if len(parts) != 3 || !strings.HasPrefix(parts[2], "HTTP/1.") {
			x.problem("not tickfan", "request line %q", clip(head[:lineEnd], 64))
			return
		}
		hdr := parseHeader(head[lineEnd:])
		bodyStart := off + hdrEnd + 4
		var body []byte
		var next int
		if te := strings.ToLower(hdr.Get("Transfer-Encoding")); strings.Contains(te, "chunked") {
			b, n, err := dechunk(d[bodyStart:])
			if err != nil {
				x.problem("truncated", "%s %s: chunked body: %v", parts[0], parts[1], err)
				return
			}
			body, next = b, bodyStart+n
		} else {
			cl := 0
			if v := hdr.Get("Content-Length"); v != "" {
				n, err := strconv.Atoi(v)
				if err != nil || n < 0 {
					x.problem("bad request", "%s %s: Content-Length %q", parts[0], parts[1], v)
					return
				}
				cl = n
			}
			if len(d)-bodyStart < cl {
				x.problem("truncated", "%s %s: body of %d bytes, %d captured", parts[0], parts[1], cl, len(d)-bodyStart)
				return
			}
			body, next = d[bodyStart:bodyStart+cl], bodyStart+cl
		}
		off = next
		path, _, _ := strings.Cut(parts[1], "?")
		if parts[0] != "POST" || path != "/api/publish" {
			x.c.Found[FoundHTTPOther]++
			continue
		}
		x.c.Found[FoundHTTPPublish]++
		pubs, err := parsePublishBody(body)
		if err != nil {
			x.problem("bad publish body", "%v", err)
			continue
		}
		x.c.Found[FoundHTTPItems] += len(pubs)
		x.st.Pubs += len(pubs)
		x.event(off, Event{Pubs: pubs})
	}
}

func parseHeader(b []byte) textproto.MIMEHeader {
	h := textproto.MIMEHeader{}
	for _, line := range strings.Split(string(b), "\r\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok {
			h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
		}
	}
	return h
}

// dechunk decodes a chunked body, returning it and the bytes it took.
func dechunk(d []byte) ([]byte, int, error) {
	var body []byte
	off := 0
	for {
		le := bytes.Index(d[off:], []byte("\r\n"))
		if le < 0 {
			return nil, 0, errors.New("chunk size line cut")
		}
		sz, _, _ := strings.Cut(string(d[off:off+le]), ";")
		n, err := strconv.ParseUint(strings.TrimSpace(sz), 16, 31)
		if err != nil {
			return nil, 0, fmt.Errorf("chunk size %q", sz)
		}
		off += le + 2
		if n == 0 {
			// Trailers, then an empty line.
			end := bytes.Index(d[off:], []byte("\r\n"))
			for end > 0 {
				off += end + 2
				end = bytes.Index(d[off:], []byte("\r\n"))
			}
			if end < 0 {
				return nil, 0, errors.New("chunked body cut before its end")
			}
			return body, off + 2, nil
		}
		if len(d)-off < int(n)+2 {
			return nil, 0, fmt.Errorf("chunk of %d bytes cut", n)
		}
		body = append(body, d[off:off+int(n)]...)
		off += int(n) + 2
	}
}

type httpItem struct {
	T *string         `json:"t"`
	D json.RawMessage `json:"d"`
	K string          `json:"k"`
}

// parsePublishBody reads the two shapes of PROTOCOL.md, HTTP publish.
func parsePublishBody(body []byte) ([]Publication, error) {
	var shape struct {
		httpItem
		Batch *[]httpItem `json:"batch"`
	}
	if err := json.Unmarshal(body, &shape); err != nil {
		return nil, fmt.Errorf("body %q: %v", clip(body, 40), err)
	}
	items := []httpItem{shape.httpItem}
	if shape.Batch != nil {
		items = *shape.Batch
		if len(items) == 0 {
			return nil, errors.New("empty batch")
		}
	}
	pubs := make([]Publication, 0, len(items))
	for i, it := range items {
		if it.T == nil || it.D == nil {
			return nil, fmt.Errorf("item %d: t or d missing", i)
		}
		if err := topic.ValidName(*it.T); err != nil {
			return nil, fmt.Errorf("item %d: %v", i, err)
		}
		pubs = append(pubs, Publication{Topic: *it.T, Data: []byte(it.D), Snap: it.K == "snap"})
	}
	return pubs, nil
}
