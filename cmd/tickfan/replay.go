package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/tickfan/tickfan/bench/replay"
	"github.com/tickfan/tickfan/client"
)

const replayUsage = `usage: tickfan replay --pcap FILE [flags]

Reads a capture of a tickfan node's traffic (scripts/capture records one)
and plays it again against a running server: the publications it holds
(TCP pub commands, HTTP POST /api/publish, Redis PUBLISH and SPUBLISH) and
the subscriptions (WebSocket or TCP sub commands), at the captured pace
scaled by --speed. Then it reports what it found in the capture and could
not parse, what it sent, what the server acknowledged, what the
subscribers received against what they should have, and the latency from
each publication to its receipt.

Traffic goes only to the addresses given here (--target, or --ws, --tcp
and --http), never to those in the capture. The run stops by itself after
the capture's last event and --drain, or after --duration.

The target must accept the captured publications: over TCP (the default)
anonymous pubs of their topics (tickfan serve --anonymous-pub) or --token
with a pub claim; with --pub-http, the server's --api-key. Start it with a
high --cmd-rate when replaying fast or amplified.

Flags:
`

func replayCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		io.WriteString(stderr, replayUsage)
		fs.PrintDefaults()
	}
	var cfg replay.Config
	pcap := fs.String("pcap", "", "capture `file` to replay (pcap or pcapng), e.g. from scripts/capture")
	target := fs.String("target", "127.0.0.1", "`host` of the server to replay against; --ws, --tcp and --http default to its ports 8080, 8081 and 8082")
	fs.StringVar(&cfg.WSURL, "ws", "", "server WebSocket `url` (default ws://TARGET:8080/ws)")
	fs.StringVar(&cfg.TCPAddr, "tcp", "", "server msgpack-over-TCP `address` (default TARGET:8081)")
	fs.StringVar(&cfg.HTTPURL, "http", "", "server HTTP `url` for --pub-http (default http://TARGET:8082)")
	fs.Float64Var(&cfg.Speed, "speed", 1, "pace `factor`: 1 as captured, 2 twice as fast, 0 as fast as possible")
	fs.IntVar(&cfg.Amplify, "amplify", 1, "subscriber connections per captured subscriber (`count`)")
	fs.BoolVar(&cfg.AmplifyPubs, "amplify-pubs", false, "also open --amplify connections per captured publisher, each publishing every publication")
	fs.BoolVar(&cfg.PubHTTP, "pub-http", false, "publish through POST /api/publish (an HTTP batch stays a batch) instead of TCP pub commands")
	fs.StringVar(&cfg.APIKey, "api-key", "", "the server's HTTP publish `key` (its --api-key), for --pub-http")
	fs.StringVar(&cfg.Token, "token", "", "`JWT` every TCP publisher and subscriber authenticates with first (default: anonymous)")
	subProto := fs.String("sub-proto", "", "subscribers' `transport`: ws-json, ws-msgpack or tcp (default: each as captured)")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Minute, "cap on the whole run (`duration`)")
	fs.DurationVar(&cfg.Drain, "drain", 3*time.Second, "longest wait after the last event for replies and deliveries (`duration`)")
	dryRun := fs.Bool("dry-run", false, "read the capture and report what it holds; send nothing")
	asJSON := fs.Bool("json", false, "print the report as one JSON line instead of text")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return badUsage("unexpected arguments %q (see tickfan replay -h)", fs.Args())
	}
	if *pcap == "" {
		return badUsage("--pcap is required: the capture to replay (scripts/capture records one)")
	}
	if cfg.Speed < 0 {
		return badUsage("--speed %g: want 0 (as fast as possible) or more", cfg.Speed)
	}
	if cfg.Amplify < 1 {
		return badUsage("--amplify %d: want 1 or more", cfg.Amplify)
	}
	if cfg.Duration <= 0 {
		return badUsage("--duration %v: a replay is bounded; want more than 0", cfg.Duration)
	}
	if cfg.PubHTTP && cfg.APIKey == "" {
		return badUsage("--pub-http needs --api-key (the server's --api-key)")
	}
	if *subProto != "" {
		p, err := client.ParseProto(*subProto)
		if err != nil {
			return badUsage("--sub-proto: %v", err)
		}
		cfg.SubProto = p
	}
	if cfg.WSURL == "" {
		cfg.WSURL = "ws://" + net.JoinHostPort(*target, "8080") + "/ws"
	}
	if cfg.TCPAddr == "" {
		cfg.TCPAddr = net.JoinHostPort(*target, "8081")
	}
	if cfg.HTTPURL == "" {
		cfg.HTTPURL = "http://" + net.JoinHostPort(*target, "8082")
	}
	if !*quiet {
		cfg.Log = stderr
	}

	f, err := os.Open(*pcap)
	if err != nil {
		return err
	}
	c, err := replay.Read(f)
	f.Close()
	if err != nil {
		return err
	}
	var rep *replay.Report
	if *dryRun {
		rep = replay.Summary(c, cfg)
	} else {
		if !*quiet {
			fmt.Fprintf(stderr, "replay: %d events of %s to %s, %s and %s\n", len(c.Events), *pcap, cfg.WSURL, cfg.TCPAddr, cfg.HTTPURL)
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		rep, err = replay.Run(ctx, cfg, c)
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			err = errors.New("interrupted")
		}
	}
	if *asJSON {
		b, jerr := json.Marshal(rep)
		if jerr != nil {
			return jerr
		}
		fmt.Fprintf(stdout, "%s\n", b)
	} else if werr := rep.WriteText(stdout); werr != nil {
		return werr
	}
	return err
}
