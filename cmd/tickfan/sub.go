package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"github.com/vmihailenco/msgpack/v5"
)

// replyTimeout bounds the wait for the answer to auth and sub; after it
// sub waits for publications as long as the server keeps the connection.
const replyTimeout = 10 * time.Second

// Request ids of the commands sub sends.
const (
	authID = 1
	subID  = 2
	pingID = 3 // TCP keep-alive, answered by the server and not printed
)

// sub subscribes and prints every message as a JSON line.
func sub(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sub", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: tickfan sub [flags] topic...\n\n"+
			"Subscribes to the topics and prints every message from the server as a JSON\n"+
			"line: the sub reply, then publications, reset and lag. Flags go before the\n"+
			"topics. An error reply (401, 403, 400...) or a close by the server ends it\n"+
			"with exit 1.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	url := fs.String("url", "ws://127.0.0.1:8080/ws", "server WebSocket `url`")
	useMsgpack := fs.Bool("msgpack", false, "use the tickfan.v1.msgpack subprotocol (printed as JSON all the same)")
	useTCP := fs.Bool("tcp", false, "connect over msgpack-over-TCP to --tcp-addr instead of WebSocket")
	tcpAddr := fs.String("tcp-addr", "127.0.0.1:8081", "server msgpack-over-TCP `host:port` (with --tcp)")
	token := fs.String("token", "", "authenticate with this JWT first (see tickfan token); an auth error ends sub")
	var since sinceFlag
	fs.Var(&since, "since", "resume `topic=epoch:seq` from the last publication held (repeatable; from the sub reply's e and a publication's s)")
	count := fs.Int("n", 0, "exit after this many publications (`count`, 0 = never)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *count < 0 {
		return badUsage("-n %d: must be 0 (never) or more", *count)
	}
	topics := fs.Args()
	if len(topics) == 0 {
		return badUsage("name at least one topic (tickfan sub [flags] topic...)")
	}
	for _, t := range topics {
		if strings.HasPrefix(t, "-") {
			return badUsage("topic %q looks like a flag: flags go before topics (tickfan sub [flags] topic...)", t)
		}
	}
	for t := range since {
		if !contains(topics, t) {
			return badUsage("--since %s: %q is not among the topics %q", t, t, topics)
		}
	}

	var c subConn
	var err error
	if *useTCP {
		c, err = dialTCPSub(*tcpAddr)
	} else {
		c, err = dialWSSub(*url, *useMsgpack)
	}
	if err != nil {
		return err
	}
	defer c.close()

	_ = c.setDeadline(time.Now().Add(replyTimeout))
	if *token != "" {
		if err := c.send(map[string]any{"op": "auth", "id": authID, "token": *token}); err != nil {
			return err
		}
		if err := awaitReply(c, "auth", authID, stdout); err != nil {
			return err
		}
	}
	req := map[string]any{"op": "sub", "id": subID, "topics": topics}
	if len(since) > 0 {
		req["since"] = since
	}
	if err := c.send(req); err != nil {
		return err
	}
	if err := awaitReply(c, "sub", subID, stdout); err != nil {
		return err
	}
	_ = c.setDeadline(time.Time{})

	for seen := 0; *count == 0 || seen < *count; {
		m, line, err := c.recv()
		if err != nil {
			return err
		}
		if skip, err := handle(c, m); err != nil || skip {
			if err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(stdout, "%s\n", line)
		if _, isPub := m["t"]; isPub && m["op"] == nil {
			seen++
		}
	}
	return nil
}

// awaitReply reads until the reply to request id, printing what comes
// before it and the reply itself; an error reply becomes the error.
func awaitReply(c subConn, what string, id uint64, stdout io.Writer) error {
	for {
		m, line, err := c.recv()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return fmt.Errorf("no answer to %s within %s", what, replyTimeout)
			}
			return err
		}
		if skip, err := handle(c, m); err != nil || skip {
			if err != nil {
				return err
			}
			continue
		}
		if got, ok := asUint(m["id"]); ok && got == id {
			if e, isErr := m["err"]; isErr {
				return fmt.Errorf("%s refused: %s", what, describeErr(e))
			}
			fmt.Fprintf(stdout, "%s\n", line)
			return nil
		}
		fmt.Fprintf(stdout, "%s\n", line)
	}
}

// handle deals with the messages sub does not print: TCP pings (answered,
// so the server does not close the client as idle), the answers to those,
// an error without id, and the server's close.
func handle(c subConn, m map[string]any) (skip bool, err error) {
	id, hasID := asUint(m["id"])
	switch {
	case m["op"] == "ping" && !hasID:
		return true, c.send(map[string]any{"op": "ping", "id": pingID})
	case hasID && id == pingID:
		return true, nil
	case m["op"] == "close":
		return true, fmt.Errorf("server closed the connection: %v %v", m["code"], m["reason"])
	case !hasID && m["err"] != nil:
		return true, fmt.Errorf("server: %s", describeErr(m["err"]))
	}
	return false, nil
}

// describeErr renders {"code":C,"msg":".."} as "C msg".
func describeErr(e any) string {
	m, ok := e.(map[string]any)
	if !ok {
		return fmt.Sprint(e)
	}
	code, _ := asUint(m["code"])
	return fmt.Sprintf("%d %v", code, m["msg"])
}

// asUint reads a JSON or msgpack number as an unsigned integer.
func asUint(v any) (uint64, bool) {
	switch n := v.(type) {
	case float64:
		if n >= 0 && n == float64(uint64(n)) {
			return uint64(n), true
		}
	case int8:
		return uint64(n), n >= 0
	case int16:
		return uint64(n), n >= 0
	case int32:
		return uint64(n), n >= 0
	case int64:
		return uint64(n), n >= 0
	case int:
		return uint64(n), n >= 0
	case uint8:
		return uint64(n), true
	case uint16:
		return uint64(n), true
	case uint32:
		return uint64(n), true
	case uint64:
		return n, true
	}
	return 0, false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// sinceFlag is --since topic=epoch:seq, repeatable; it marshals as the
// "since" of a sub.
type sinceFlag map[string]sincePos

type sincePos struct {
	E string `json:"e" msgpack:"e"`
	S uint64 `json:"s" msgpack:"s"`
}

func (f *sinceFlag) String() string {
	if f == nil {
		return ""
	}
	var parts []string
	for t, p := range *f {
		parts = append(parts, fmt.Sprintf("%s=%s:%d", t, p.E, p.S))
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func (f *sinceFlag) Set(v string) error {
	name, pos, ok := strings.Cut(v, "=")
	i := strings.LastIndexByte(pos, ':')
	if !ok || name == "" || i <= 0 {
		return errors.New("want topic=epoch:seq, e.g. trade.BTCUSDT=3zt2enlxskzthdsb:42")
	}
	seq, err := strconv.ParseUint(pos[i+1:], 10, 64)
	if err != nil {
		return fmt.Errorf("seq %q is not an unsigned integer; want topic=epoch:seq", pos[i+1:])
	}
	if *f == nil {
		*f = sinceFlag{}
	}
	if _, dup := (*f)[name]; dup {
		return fmt.Errorf("%s given twice", name)
	}
	(*f)[name] = sincePos{E: pos[:i], S: seq}
	return nil
}

// subConn is one connection of sub: WebSocket (JSON or msgpack) or TCP.
// recv returns a message decoded and as the JSON line to print.
type subConn interface {
	send(m map[string]any) error
	recv() (map[string]any, []byte, error)
	setDeadline(t time.Time) error
	close() error
}

type wsSub struct {
	c       *websocket.Conn
	msgpack bool
}

func dialWSSub(url string, useMsgpack bool) (*wsSub, error) {
	proto := "tickfan.v1.json"
	if useMsgpack {
		proto = "tickfan.v1.msgpack"
	}
	d := websocket.Dialer{Subprotocols: []string{proto}, HandshakeTimeout: replyTimeout}
	c, _, err := d.Dial(url, nil)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", url, err)
	}
	return &wsSub{c: c, msgpack: useMsgpack}, nil
}

func (w *wsSub) send(m map[string]any) error {
	if w.msgpack {
		b, err := msgpack.Marshal(m)
		if err != nil {
			return err
		}
		return w.c.WriteMessage(websocket.BinaryMessage, b)
	}
	return w.c.WriteJSON(m)
}

func (w *wsSub) recv() (map[string]any, []byte, error) {
	_, b, err := w.c.ReadMessage()
	if err != nil {
		return nil, nil, err
	}
	if w.msgpack {
		return fromMsgpack(b)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, nil, fmt.Errorf("bad JSON from server: %w", err)
	}
	return m, bytes.TrimSpace(b), nil
}

func (w *wsSub) setDeadline(t time.Time) error { return w.c.SetReadDeadline(t) }
func (w *wsSub) close() error                  { return w.c.Close() }

// maxTCPFrame bounds a frame sub accepts from the server.
const maxTCPFrame = 64 << 20

// tcpSub is msgpack over TCP: a 4-byte big-endian length, then a map.
type tcpSub struct {
	c net.Conn
	r *bufio.Reader
}

func dialTCPSub(addr string) (*tcpSub, error) {
	c, err := net.DialTimeout("tcp", addr, replyTimeout)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return &tcpSub{c: c, r: bufio.NewReader(c)}, nil
}

func (t *tcpSub) send(m map[string]any) error {
	b, err := msgpack.Marshal(m)
	if err != nil {
		return err
	}
	frame := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(b)), uint32(len(b)))
	_, err = t.c.Write(append(frame, b...))
	return err
}

func (t *tcpSub) recv() (map[string]any, []byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(t.r, hdr[:]); err != nil {
		return nil, nil, err
	}
	if string(hdr[:]) == "HTTP" {
		return nil, nil, errors.New("the server answered in HTTP: --tcp-addr is not its TCP listener")
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || n > maxTCPFrame {
		return nil, nil, fmt.Errorf("server sent a frame length of %d", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(t.r, b); err != nil {
		return nil, nil, err
	}
	return fromMsgpack(b)
}

func (t *tcpSub) setDeadline(d time.Time) error { return t.c.SetReadDeadline(d) }
func (t *tcpSub) close() error                  { return t.c.Close() }

// fromMsgpack decodes a msgpack map and renders it as a JSON line.
func fromMsgpack(b []byte) (map[string]any, []byte, error) {
	var m map[string]any
	if err := msgpack.Unmarshal(b, &m); err != nil {
		return nil, nil, fmt.Errorf("bad msgpack from server: %w", err)
	}
	line, err := json.Marshal(m)
	if err != nil {
		return nil, nil, fmt.Errorf("message from server has no JSON form: %w", err)
	}
	return m, line, nil
}
