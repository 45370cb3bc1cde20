package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/tickfan/tickfan/bench"
)

// benchVersus prints the head-to-head table of the runs of --pub-http or
// --target centrifugo in a results file.
func benchVersus(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench versus", flag.ContinueOnError)
	fs.SetOutput(stderr)
	in := fs.String("in", "", "results `file` (JSON lines from tickfan bench --pub-http or --target centrifugo)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *in == "" || fs.NArg() > 0 {
		return fmt.Errorf("usage: tickfan bench versus -in results.jsonl")
	}
	vs, err := bench.ReadVersus(*in)
	if err != nil {
		return err
	}
	if len(vs) == 0 {
		return fmt.Errorf("%s holds no results", *in)
	}
	return bench.WriteVersusMarkdown(stdout, vs)
}
