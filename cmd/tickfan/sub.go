package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tickfan/tickfan/client"
)

// dialTimeout bounds each connection attempt and its WebSocket handshake.
const dialTimeout = 10 * time.Second

// sub subscribes and prints every publication, and what happens to the
// subscription, as JSON lines, reconnecting and recovering by itself.
func sub(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sub", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: tickfan sub [flags] topic...\n\n"+
			"Subscribes to the topics and prints one JSON line on stdout for each\n"+
			"publication and each thing that happens to the subscription. Flags go\n"+
			"before the topics.\n\n"+
			"When the connection breaks (a server restart, a drain, a dead link) sub\n"+
			"connects again with backoff and resubscribes from the last publication\n"+
			"it printed: each topic continues with exactly what it missed, or, when\n"+
			"the server cannot continue it (history gone, a new epoch), a reset line\n"+
			"says so before the topic starts again. A hole in the stream is repaired\n"+
			"the same way and a publication printed already is never printed again.\n\n"+
			"Lines with \"t\" and no \"op\" or \"event\" are publications, as the server\n"+
			"sends them: {\"t\":topic,\"s\":seq,\"d\":data} plus \"k\":\"snap\" on a snapshot.\n"+
			"Lines with \"op\" are the server's: {\"op\":\"reset\",\"t\",\"e\",\"s\"} (drop what\n"+
			"you hold of t: its snapshot or the updates after s follow) and\n"+
			"{\"op\":\"lag\",\"t\",\"s\"}. Lines with \"event\" are sub's own:\n"+
			"  connected     {\"event\":\"connected\",\"addr\",\"attempt\"} (+\"user\",\"exp\" with a token)\n"+
			"  subscribed    {\"event\":\"subscribed\",\"t\",\"e\",\"s\"}: started afresh at s\n"+
			"  recovered     {\"event\":\"recovered\",\"t\",\"e\",\"from\",\"missed\",\"gap\"}:\n"+
			"                continues after from; missed publications follow\n"+
			"  resumed       {\"event\":\"resumed\",\"t\",\"s\"}: pushed again after a lag\n"+
			"  disconnected  {\"event\":\"disconnected\",\"error\",\"code\",\"retry_ms\"}\n"+
			"To resume a later run where this one stopped, pass --since t=e:s with the\n"+
			"e of the last subscribed, recovered or reset line of t and the s of its last\n"+
			"publication.\n\n"+
			"A refused auth or sub (401, 403, 400...), or a close the server says not\n"+
			"to retry (4003, 4004), ends sub with exit 1, as does any disconnect with\n"+
			"--reconnect=false.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	url := fs.String("url", "ws://127.0.0.1:8080/ws", "server WebSocket `url`")
	useMsgpack := fs.Bool("msgpack", false, "use the tickfan.v1.msgpack subprotocol (printed as JSON all the same)")
	useTCP := fs.Bool("tcp", false, "connect over msgpack-over-TCP to --tcp-addr instead of WebSocket")
	tcpAddr := fs.String("tcp-addr", "127.0.0.1:8081", "server msgpack-over-TCP `host:port` (with --tcp)")
	token := fs.String("token", "", "authenticate with this JWT (see tickfan token); a refused auth ends sub")
	tokenFile := fs.String("token-file", "", "authenticate with the JWT on the first line of this `file`, read again for each connection and before the token expires (sent as refresh), so that whatever renews the file keeps sub connected")
	var since sinceFlag
	fs.Var(&since, "since", "resume `topic=epoch:seq` from the last publication held (repeatable; e from a subscribed, recovered or reset line, s from a publication)")
	count := fs.Int("n", 0, "exit after this many publications (`count`, 0 = never)")
	reconnect := fs.Bool("reconnect", true, "connect again when the connection breaks; false: exit 1 instead")
	idle := fs.Duration("server-idle", client.DefaultIdleTimeout, "drop and remake a connection on which the server sent nothing, not even its heartbeat, this long (`duration`)")
	backoffMax := fs.Duration("backoff-max", client.DefaultBackoffMax, "longest wait between connection attempts (`duration`; from 100ms, doubling, with jitter)")
	conflate := fs.String("conflate", client.DefaultConflate, "conflated topic `patterns`, as the server's --conflate (seq may jump there), or - for none")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *count < 0 {
		return badUsage("-n %d: must be 0 (never) or more", *count)
	}
	if *idle <= 0 {
		return badUsage("--server-idle %s: must be more than 0", *idle)
	}
	if *backoffMax <= 0 {
		return badUsage("--backoff-max %s: must be more than 0", *backoffMax)
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

	cfg := client.Config{Proto: client.WSJSON, Addr: *url, DialTimeout: dialTimeout}
	switch {
	case *useTCP:
		cfg.Proto, cfg.Addr = client.TCP, *tcpAddr
	case *useMsgpack:
		cfg.Proto = client.WSMsgpack
	}
	opts := []client.Option{
		client.WithIdleTimeout(*idle), client.WithConflate(*conflate),
		client.WithBackoff(client.Backoff{Max: *backoffMax}),
	}
	switch {
	case *token != "" && *tokenFile != "":
		return badUsage("--token and --token-file: give one")
	case *token != "":
		opts = append(opts, client.WithToken(*token))
	case *tokenFile != "":
		if _, err := firstLine("token-file", *tokenFile); err != nil {
			return usageError{err}
		}
		opts = append(opts, client.WithTokenFunc(func(context.Context) (string, error) {
			return firstLine("token-file", *tokenFile)
		}))
	}
	for t, p := range since {
		opts = append(opts, client.WithSince(t, p))
	}
	if !*reconnect {
		opts = append(opts, client.WithoutReconnect())
	}
	s, err := client.Subscribe(cfg, topics, opts...)
	if err != nil {
		return badUsage("%v", err)
	}
	defer s.Close()

	for seen := 0; *count == 0 || seen < *count; {
		ev, err := s.Next(context.Background())
		if err != nil {
			return err
		}
		line, err := eventLine(ev)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n", line)
		if _, ok := ev.(client.Pub); ok {
			seen++
		}
	}
	return nil
}

// eventLine is the JSON line sub prints for an event (see sub's usage).
func eventLine(ev client.Event) ([]byte, error) {
	switch e := ev.(type) {
	case client.Pub:
		d, err := jsonData(e)
		if err != nil {
			return nil, err
		}
		kv := []any{"t", e.Topic, "s", e.Seq, "d", d}
		if e.Snap {
			kv = append(kv, "k", "snap")
		}
		return jsonLine(kv...)
	case client.Reset:
		return jsonLine("op", "reset", "t", e.Topic, "e", e.Epoch, "s", e.Seq)
	case client.Lag:
		return jsonLine("op", "lag", "t", e.Topic, "s", e.Seq)
	case client.Subscribed:
		return jsonLine("event", "subscribed", "t", e.Topic, "e", e.Epoch, "s", e.Seq)
	case client.Recovered:
		return jsonLine("event", "recovered", "t", e.Topic, "e", e.Epoch, "from", e.From, "missed", e.Missed, "gap", e.Gap)
	case client.Resumed:
		return jsonLine("event", "resumed", "t", e.Topic, "s", e.Seq)
	case client.Connected:
		kv := []any{"event", "connected", "addr", e.Addr, "attempt", e.Attempt}
		if e.User != "" {
			kv = append(kv, "user", e.User, "exp", e.Expires.Unix())
		}
		return jsonLine(kv...)
	case client.Disconnected:
		kv := []any{"event", "disconnected", "error", e.Err.Error()}
		if e.Code != 0 {
			kv = append(kv, "code", e.Code)
		}
		return jsonLine(append(kv, "retry_ms", e.Retry.Milliseconds())...)
	}
	return nil, fmt.Errorf("unknown event %T", ev)
}

// jsonLine encodes a JSON object whose keys come in the order given
// (the server's order, "t" first, then "s"), from alternating keys and
// values.
func jsonLine(kv ...any) ([]byte, error) {
	b := []byte{'{'}
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, kv[i].(string))
		v, err := json.Marshal(kv[i+1])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", kv[i], err)
		}
		b = append(append(b, ':'), v...)
	}
	return append(b, '}'), nil
}

// jsonData is a publication's payload as JSON: as the server sent it, or
// converted from msgpack.
func jsonData(p client.Pub) (json.RawMessage, error) {
	if !p.Msgpack() {
		return bytes.TrimSpace(p.Data), nil
	}
	var v any
	if err := p.DecodeData(&v); err != nil {
		return nil, fmt.Errorf("bad msgpack from server: %w", err)
	}
	d, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("payload of %s %d has no JSON form: %w", p.Topic, p.Seq, err)
	}
	return d, nil
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

// Set takes one topic=epoch:seq, or several separated by commas as the
// environment gives them (TICKFAN_SINCE=a=e:1,b=e:2): neither a topic name
// nor an epoch holds a comma.
func (f *sinceFlag) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		if err := f.set(strings.TrimSpace(part)); err != nil {
			return err
		}
	}
	return nil
}

func (f *sinceFlag) set(v string) error {
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
