// Command tickfan is the tickfan market-data fan-out server and its tools.
//
//	tickfan serve [flags]          run the server (--demo adds a demo market feed)
//	tickfan sub [flags] topic...   print a topic's messages as JSON lines
//	tickfan pub [flags] topic data publish one message over the HTTP API
//	tickfan bench [flags]          load scenarios against a running server
//
// Every flag may also be given in the environment as TICKFAN_<FLAG>, with
// dashes as underscores: --api-key is TICKFAN_API_KEY. A flag on the command
// line wins over the environment.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: tickfan <command> [flags]

commands:
  serve   run the server (try: tickfan serve --demo)
  sub     subscribe over WebSocket and print messages as JSON lines
  pub     publish one message through the HTTP API
  bench   load scenarios against a running server; bench report renders results

"tickfan <command> -h" lists a command's flags.
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
	case "bench":
		err = benchCmd(args[1:], stdout, stderr)
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
		return 1
	}
	return 0
}

// parseFlags parses args, then fills every flag not given on the command
// line from TICKFAN_<NAME> in the environment.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		env := "TICKFAN_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok && !set[f.Name] && err == nil {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", env, v, e)
			}
		}
	})
	return err
}
