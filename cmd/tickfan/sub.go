package main

import (
	"bytes"
	"context"
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

	"github.com/vmihailenco/msgpack/v5"

	"github.com/tickfan/tickfan/client"
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

	cfg := client.Config{Proto: client.WSJSON, Addr: *url, DialTimeout: replyTimeout}
	switch {
	case *useTCP:
		cfg.Proto, cfg.Addr = client.TCP, *tcpAddr
	case *useMsgpack:
		cfg.Proto = client.WSMsgpack
	}
	c, err := client.Dial(context.Background(), cfg)
	if err != nil {
		return err
	}
	defer c.Close()

	_ = c.SetReadDeadline(time.Now().Add(replyTimeout))
	if *token != "" {
		if err := c.Auth(authID, *token); err != nil {
			return err
		}
		if err := awaitReply(c, "auth", authID, stdout); err != nil {
			return err
		}
	}
	if err := c.Subscribe(subID, topics, since); err != nil {
		return err
	}
	if err := awaitReply(c, "sub", subID, stdout); err != nil {
		return err
	}
	_ = c.SetReadDeadline(time.Time{})

	for seen := 0; *count == 0 || seen < *count; {
		m, line, err := recv(c)
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
		if m.Kind == client.KindPublication {
			seen++
		}
	}
	return nil
}

// awaitReply reads until the reply to request id, printing what comes
// before it and the reply itself; an error reply becomes the error.
func awaitReply(c *client.Conn, what string, id uint64, stdout io.Writer) error {
	for {
		m, line, err := recv(c)
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
		if m.Kind == client.KindReply && m.HasID && m.ID == id {
			if m.Err != nil {
				return fmt.Errorf("%s refused: %d %s", what, m.Err.Code, m.Err.Msg)
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
func handle(c *client.Conn, m client.Message) (skip bool, err error) {
	switch {
	case m.Kind == client.KindPing:
		return true, c.Ping(pingID)
	case m.Kind == client.KindReply && m.HasID && m.ID == pingID:
		return true, nil
	case m.Kind == client.KindClose:
		return true, fmt.Errorf("server closed the connection: %d %s", m.Code, m.Reason)
	case m.Kind == client.KindReply && !m.HasID && m.Err != nil:
		return true, fmt.Errorf("server: %d %s", m.Err.Code, m.Err.Msg)
	}
	return false, nil
}

// recv reads the next message, decoded and as the JSON line to print: a
// JSON message as the server sent it, a msgpack one converted with its
// keys sorted.
func recv(c *client.Conn) (client.Message, []byte, error) {
	body, err := c.NextBody()
	if err != nil {
		return client.Message{}, nil, err
	}
	m, err := client.Decode(body, c.Proto().Msgpack())
	if err != nil {
		return client.Message{}, nil, err
	}
	if !c.Proto().Msgpack() {
		return m, bytes.TrimSpace(body), nil
	}
	var v map[string]any
	if err := msgpack.Unmarshal(body, &v); err != nil {
		return client.Message{}, nil, fmt.Errorf("bad msgpack from server: %w", err)
	}
	line, err := json.Marshal(v)
	if err != nil {
		return client.Message{}, nil, fmt.Errorf("message from server has no JSON form: %w", err)
	}
	return m, line, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// sinceFlag is --since topic=epoch:seq, repeatable: the "since" of a sub.
type sinceFlag map[string]client.Position

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
	(*f)[name] = client.Position{E: pos[:i], S: seq}
	return nil
}
