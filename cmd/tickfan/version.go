package main

import (
	"flag"
	"fmt"
	"io"
	"runtime/debug"
)

// versionCmd prints the module version and the VCS revision the binary
// was built from, as the Go toolchain stamped them.
func versionCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: tickfan version\n\nPrints the module version, VCS revision and Go version of this binary.\n")
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return badUsage("unexpected arguments %q", fs.Args())
	}
	fmt.Fprint(stdout, versionText(debug.ReadBuildInfo()))
	return nil
}

// versionText renders build info as "tickfan <version>" and one line per
// known fact.
func versionText(bi *debug.BuildInfo, ok bool) string {
	if !ok {
		return "tickfan (unknown version: built without module support)\n"
	}
	version := bi.Main.Version
	if version == "" {
		version = "(devel)"
	}
	s := "tickfan " + version + "\n"
	if bi.Main.Path != "" {
		s += "module   " + bi.Main.Path + "\n"
	}
	vcs := map[string]string{}
	for _, kv := range bi.Settings {
		vcs[kv.Key] = kv.Value
	}
	if rev := vcs["vcs.revision"]; rev != "" {
		if vcs["vcs.modified"] == "true" {
			rev += " (modified: uncommitted changes)"
		}
		s += "revision " + rev + "\n"
		if t := vcs["vcs.time"]; t != "" {
			s += "commit   " + t + "\n"
		}
	} else {
		s += "revision unknown (no VCS stamp: built outside a checkout, by go run or go test, or with -buildvcs=false)\n"
	}
	return s + "go       " + bi.GoVersion + "\n"
}
