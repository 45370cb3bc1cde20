package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/tickfan/tickfan/bench/replay"
)

const testPcap = "../../bench/replay/testdata/capture.pcap"

func TestReplayFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"replay", "-h"}, 0, "never to those in the capture"},
		{[]string{"replay"}, 2, "--pcap is required"},
		{[]string{"replay", "--pcap", testPcap, "x"}, 2, "unexpected arguments"},
		{[]string{"replay", "--pcap", testPcap, "--speed", "-1"}, 2, "--speed -1"},
		{[]string{"replay", "--pcap", testPcap, "--amplify", "0"}, 2, "--amplify 0"},
		{[]string{"replay", "--pcap", testPcap, "--duration", "0s"}, 2, "a replay is bounded"},
		{[]string{"replay", "--pcap", testPcap, "--pub-http"}, 2, "--pub-http needs --api-key"},
		{[]string{"replay", "--pcap", testPcap, "--sub-proto", "udp"}, 2, "--sub-proto"},
		{[]string{"replay", "--pcap", "no/such.pcap"}, 1, "no such file"},
		{[]string{"replay", "--pcap", "replay.go", "--dry-run"}, 1, "read capture"},
		{[]string{"replay", "--pcap", testPcap, "--dry-run"}, 0, "tcp pub 5, ws sub 2; 13 events to replay, 13 publications"},
		{[]string{"help"}, 0, "replay   replay a capture"},
	} {
		var out, errOut bytes.Buffer
		code := run(tc.args, &out, &errOut)
		if code != tc.code || !strings.Contains(out.String()+errOut.String(), tc.out) {
			t.Errorf("tickfan %q: exit %d, output %q; want exit %d and %q", tc.args, code, out.String()+errOut.String(), tc.code, tc.out)
		}
	}
}

// The committed capture replayed against a real server, publishing over
// HTTP (the test server allows no anonymous pubs) with every subscriber
// three times: 21 deliveries per copy of the captured pair.
func TestReplayCommand(t *testing.T) {
	s := startServer(t)
	args := []string{"replay", "--pcap", testPcap, "--ws", s.wsURL(), "--tcp", s.srv.TCPAddr(),
		"--http", "http://" + s.srv.HTTPAddr(), "--pub-http", "--api-key", testAPIKey,
		"--speed", "0", "--amplify", "3", "--json", "--quiet"}
	var out, errOut bytes.Buffer
	if code := run(args, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s%s", code, out.String(), errOut.String())
	}
	var rep replay.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if rep.Acknowledged != 13 || rep.Delivered != 63 || rep.Expected != 63 || rep.SubscriberConns != 6 || rep.ErrorCount != 0 {
		t.Errorf("report %s", out.String())
	}
}
