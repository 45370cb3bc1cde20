package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// usageError is a command line or configuration the command cannot run
// with: run prints it in one line and exits 2, without the flag list.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// badUsage returns a usageError with the formatted message.
func badUsage(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// envName is the environment variable of a flag: TICKFAN_<NAME>, dashes as
// underscores.
func envName(flagName string) string {
	return "TICKFAN_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// dashes spells a flag as help text does: -n, --max-frame.
func dashes(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// parseFlags parses args, then fills every flag not given on the command
// line from TICKFAN_<NAME> in the environment. A bad flag comes back as a
// usageError of one line naming it (--heartbeat "5": a duration needs a
// unit, e.g. 5s); -h prints the command's usage with each flag's
// environment variable and returns flag.ErrHelp.
func parseFlags(fs *flag.FlagSet, args []string) error {
	usage, out := fs.Usage, fs.Output()
	var bad error // the first value refused, in our words
	fs.VisitAll(func(f *flag.Flag) { f.Value = &namedValue{Value: f.Value, name: f.Name, bad: &bad} })
	// The flag package prints an error and the whole flag list; we print
	// one line (run does) and the list only when asked for.
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.VisitAll(func(f *flag.Flag) { f.Value = f.Value.(*namedValue).Value })
	fs.Usage = usage
	fs.SetOutput(out)
	switch {
	case err == flag.ErrHelp:
		printUsage(fs)
		return err
	case bad != nil:
		return usageError{bad}
	case err != nil:
		return badUsage("%v (tickfan %s -h lists the flags)", err, fs.Name())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	fs.VisitAll(func(f *flag.Flag) {
		env := envName(f.Name)
		if v, ok := os.LookupEnv(env); ok && !set[f.Name] && err == nil {
			if e := fs.Set(f.Name, v); e != nil {
				err = badUsage("%s=%q (%s): %s", env, v, dashes(f.Name), badValue(f.Value, v, e))
			}
		}
	})
	return err
}

// printUsage prints the command's usage to its output, each flag's help
// followed by its environment variable.
func printUsage(fs *flag.FlagSet) {
	helps := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) {
		helps[f.Name] = f.Usage
		f.Usage += " (env " + envName(f.Name) + ")"
	})
	fs.Usage()
	fs.VisitAll(func(f *flag.Flag) { f.Usage = helps[f.Name] })
	fmt.Fprintf(fs.Output(), "\nEach flag may also be set in the environment as TICKFAN_<FLAG>, dashes as\n"+
		"underscores (the name after each flag above); the command line wins.\n")
}

// namedValue is a flag's value while the command line is parsed: it keeps
// the first value refused with its flag's name and a reason a person reads.
type namedValue struct {
	flag.Value
	name string
	bad  *error
}

func (v *namedValue) Set(s string) error {
	err := v.Value.Set(s)
	if err != nil && *v.bad == nil {
		*v.bad = fmt.Errorf("%s %q: %s", dashes(v.name), s, badValue(v.Value, s, err))
	}
	return err
}

func (v *namedValue) IsBoolFlag() bool {
	b, ok := v.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// badValue says why s is no value of the flag v, in words instead of the
// flag package's "parse error".
func badValue(v flag.Value, s string, err error) string {
	var kind any
	if g, ok := v.(flag.Getter); ok {
		kind = g.Get()
	}
	switch kind.(type) {
	case time.Duration:
		if _, ferr := strconv.ParseFloat(s, 64); ferr == nil {
			return "a duration needs a unit, e.g. " + s + "s"
		}
		return "not a duration; want a number and a unit, e.g. 5s, 250ms or 1m30s"
	case int, int64, uint, uint64:
		if err.Error() == "value out of range" {
			return "out of range"
		}
		return "not a whole number"
	case float64:
		return "not a number"
	case bool:
		return "want true or false"
	}
	return err.Error()
}

// listFlag is a repeatable flag: each use adds a value; one value holding
// commas (as the environment gives it) adds each of its parts.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

// offFlag is a boolean flag, true by default, that sets a server.Config
// field saying the opposite (StatusPageOff for --status-page): Config's
// zero values are its defaults.
type offFlag bool

func (f *offFlag) String() string   { return strconv.FormatBool(!bool(*f)) }
func (f *offFlag) IsBoolFlag() bool { return true }
func (f *offFlag) Get() any         { return !bool(*f) }

func (f *offFlag) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	*f = offFlag(!v)
	return nil
}

// firstLine reads the first line of a file holding a secret or a token
// (--secret-file, --token-file), trimmed; an empty one is an error.
func firstLine(flagName, name string) (string, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return "", fmt.Errorf("%s: %w", dashes(flagName), err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	if line = strings.TrimSpace(line); line == "" {
		return "", fmt.Errorf("%s %s: the first line is empty", dashes(flagName), name)
	}
	return line, nil
}
