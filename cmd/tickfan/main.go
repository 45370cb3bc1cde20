// Command tickfan is the tickfan market-data fan-out server and its tools.
//
//	tickfan serve [flags]          run the server (--demo adds a demo market feed)
//	tickfan sub [flags] topic...   print a topic's publications as JSON lines (WebSocket, or --tcp), recovering across reconnects
//	tickfan pub [flags] topic data publish one message over the HTTP API
//	tickfan token [flags]          mint an HS256 client token for testing
//	tickfan version                print the module version and VCS revision
//	tickfan bench [flags]          load scenarios against a running server
//	tickfan replay --pcap F [flags] replay a capture's traffic against a running server
//
// Every flag may also be given in the environment as TICKFAN_<FLAG>, with
// dashes as underscores: --api-key is TICKFAN_API_KEY. A flag on the command
// line wins over the environment; "tickfan <command> -h" lists each flag's
// variable.
//
// A bad flag or configuration is reported in one line naming the flag and
// exits 2, before the server binds a port; a failure while running exits 1.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: tickfan <command> [flags]

commands:
  serve    run the server (try: tickfan serve --demo)
  sub      subscribe over WebSocket (or --tcp) and print publications as JSON
           lines; reconnects and recovers what it missed by itself
  pub      publish one message through the HTTP API
  token    mint an HS256 client token for testing (--secret, --sub, --topics, --pub)
  version  print the module version and VCS revision
  bench    load scenarios against a running server; bench report renders results
  replay   replay a capture's publications and subscriptions against a running
           server (--pcap, from scripts/capture) and report what was delivered

"tickfan <command> -h" lists a command's flags. Every flag may also be set
in the environment as TICKFAN_<FLAG>, dashes as underscores
(--api-key is TICKFAN_API_KEY); the command line wins.
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(args[1:], stderr)
	case "sub":
		err = sub(args[1:], stdout, stderr)
	case "pub":
		err = pub(args[1:], stdout, stderr)
	case "token":
		err = tokenCmd(args[1:], stdout, stderr)
	case "version":
		err = versionCmd(args[1:], stdout, stderr)
	case "bench":
		err = benchCmd(args[1:], stdout, stderr)
	case "replay":
		err = replayCmd(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "tickfan: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err == flag.ErrHelp {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "tickfan %s: %v\n", args[0], err)
		if errors.As(err, new(usageError)) {
			return 2
		}
		return 1
	}
	return 0
}
