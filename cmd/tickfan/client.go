package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"github.com/vmihailenco/msgpack/v5"
)

// sub subscribes over WebSocket and prints every message as a JSON line.
func sub(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sub", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "ws://127.0.0.1:8080/ws", "server WebSocket `url`")
	useMsgpack := fs.Bool("msgpack", false, "use the tickfan.v1.msgpack subprotocol (printed as JSON all the same)")
	count := fs.Int("n", 0, "exit after this many publications (`count`, 0 = never)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("name at least one topic")
	}
	proto := "tickfan.v1.json"
	if *useMsgpack {
		proto = "tickfan.v1.msgpack"
	}
	d := websocket.Dialer{Subprotocols: []string{proto}, HandshakeTimeout: 10 * time.Second}
	ws, _, err := d.Dial(*url, nil)
	if err != nil {
		return fmt.Errorf("dial %s: %w", *url, err)
	}
	defer ws.Close()
	req := map[string]any{"op": "sub", "id": 1, "topics": fs.Args()}
	if *useMsgpack {
		b, _ := msgpack.Marshal(req)
		err = ws.WriteMessage(websocket.BinaryMessage, b)
	} else {
		err = ws.WriteJSON(req)
	}
	if err != nil {
		return err
	}
	for seen := 0; *count == 0 || seen < *count; {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			return err
		}
		var m map[string]any
		if *useMsgpack {
			if err := msgpack.Unmarshal(msg, &m); err != nil {
				return fmt.Errorf("bad msgpack from server: %w", err)
			}
			if msg, err = json.Marshal(m); err != nil {
				return err
			}
		} else if err := json.Unmarshal(msg, &m); err != nil {
			return fmt.Errorf("bad JSON from server: %w", err)
		}
		fmt.Fprintf(stdout, "%s\n", bytes.TrimSpace(msg))
		if _, isPub := m["t"]; isPub && m["op"] == nil {
			seen++
		}
	}
	return nil
}

// pub publishes one message through POST /api/publish.
func pub(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pub", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("http", "http://127.0.0.1:8082", "server HTTP `url`")
	key := fs.String("api-key", "", "API `key` (the server's --api-key)")
	snap := fs.Bool("snap", false, "publish as a snapshot (k \"snap\")")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return fmt.Errorf("usage: tickfan pub [flags] <topic> <json data>")
	}
	item := map[string]any{"t": fs.Arg(0), "d": json.RawMessage(fs.Arg(1))}
	if !json.Valid([]byte(fs.Arg(1))) {
		return fmt.Errorf("data %q is not JSON", fs.Arg(1))
	}
	if *snap {
		item["k"] = "snap"
	}
	body, err := json.Marshal(item)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodPost, strings.TrimRight(*base, "/")+"/api/publish", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "apikey "+*key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(out))
	}
	fmt.Fprintf(stdout, "%s\n", bytes.TrimSpace(out))
	return nil
}
