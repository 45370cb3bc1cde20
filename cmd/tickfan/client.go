package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
)

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
		return badUsage("usage: tickfan pub [flags] <topic> <json data>")
	}
	item := map[string]any{"t": fs.Arg(0), "d": json.RawMessage(fs.Arg(1))}
	if !json.Valid([]byte(fs.Arg(1))) {
		return badUsage("data %q is not JSON", fs.Arg(1))
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
