package main

import (
	"bufio"
	"bytes"
	"flag"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// configDoc is the operators' reference of every flag; these tests keep it
// from drifting from the code.
const configDoc = "../../docs/CONFIG.md"

// docOnlyFlags are flags docs/CONFIG.md documents ahead of the code: the
// branch that adds them is being merged. A flag here may be missing from
// the binary; once it is there, its row is checked like any other. Remove
// an entry once its flag is in the binary.
var docOnlyFlags = map[string]bool{}

// noEnvCommands parse their flags with the flag package alone
// (cmd/tickfan/bench.go, benchversus.go): no TICKFAN_ variable.
var noEnvCommands = map[string]bool{"bench report": true, "bench versus": true, "bench echo": true}

// docRow is one flag's row of docs/CONFIG.md.
type docRow struct {
	env, def string
	line     int
}

var (
	docHeading = regexp.MustCompile("^## `tickfan ([a-z ]+)`")
	docFlagRow = regexp.MustCompile("^`(-{1,2})([a-z0-9-]+)`$")
	docCommand = regexp.MustCompile("^`tickfan ([a-z ]+)`$")
)

// readConfigDoc returns the flag rows of docs/CONFIG.md by command ("serve",
// "bench report") and flag name. A row is a table line whose flag cell is
// `--name` (or `-n`), under a "## `tickfan <command>`" heading or with the
// command in a cell of its own before the flag's.
func readConfigDoc(t *testing.T) map[string]map[string]docRow {
	t.Helper()
	f, err := os.Open(configDoc)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows := map[string]map[string]docRow{}
	cmd := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			cmd = ""
			if m := docHeading.FindStringSubmatch(line); m != nil {
				cmd = m[1]
			}
			continue
		}
		if !strings.HasPrefix(line, "|") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		rowCmd := cmd
		if m := docCommand.FindStringSubmatch(cells[0]); m != nil {
			rowCmd, cells = m[1], cells[1:]
		}
		m := docFlagRow.FindStringSubmatch(cells[0])
		if m == nil || rowCmd == "" || len(cells) < 4 {
			continue
		}
		name := m[2]
		if want := dashes(name); m[1]+name != want && !noEnvCommands[rowCmd] {
			t.Errorf("%s:%d: %s%s is spelled %s in -h", configDoc, n, m[1], name, want)
		}
		if rows[rowCmd] == nil {
			rows[rowCmd] = map[string]docRow{}
		}
		if _, dup := rows[rowCmd][name]; dup {
			t.Errorf("%s:%d: tickfan %s --%s documented twice", configDoc, n, rowCmd, name)
		}
		rows[rowCmd][name] = docRow{env: strings.Trim(cells[1], "`"), def: docValue(cells[2]), line: n}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

// docValue is a default cell's value: `""` is the empty string.
func docValue(cell string) string {
	v := strings.TrimSuffix(strings.TrimPrefix(cell, "`"), "`")
	if v == `""` {
		return ""
	}
	return v
}

// helpFlag is a flag as "tickfan <command> -h" prints it.
type helpFlag struct {
	def string
	// zero: -h shows no default, so the default is its type's zero value.
	zero bool
}

var helpDefault = regexp.MustCompile(` \(default ([^()]*)\)$`)

// helpFlags runs "tickfan <args> -h" and reads the flags and defaults the
// flag package prints. It reads what a user sees, so it needs no access to
// a command's FlagSet.
func helpFlags(t *testing.T, args ...string) map[string]helpFlag {
	t.Helper()
	var out bytes.Buffer
	if code := run(append(args, "-h"), &out, &out); code != 0 {
		t.Fatalf("tickfan %s -h: exit %d\n%s", strings.Join(args, " "), code, out.String())
	}
	flags := map[string]helpFlag{}
	name, usage := "", ""
	done := func() {
		if name == "" {
			return
		}
		// parseFlags's -h adds " (env TICKFAN_X)" to the help, and the flag
		// package " (default D)" after it: a help text's own "(default
		// ...)" comes before them.
		tail := usage
		if _, after, ok := strings.Cut(usage, " (env "+envName(name)+")"); ok {
			tail = after
		}
		h := helpFlag{zero: true}
		if m := helpDefault.FindStringSubmatch(tail); m != nil {
			h = helpFlag{def: m[1]}
			if s, err := strconv.Unquote(m[1]); err == nil {
				h.def = s
			}
		}
		flags[name] = h
	}
	for _, line := range strings.Split(out.String(), "\n") {
		switch {
		case strings.HasPrefix(line, "  -"):
			done()
			name, _, _ = strings.Cut(strings.TrimPrefix(line, "  -"), " ")
			usage = ""
		case strings.HasPrefix(line, "    \t") && name != "":
			usage = strings.TrimPrefix(line, "    \t") // the default ends the last line
		default:
			done()
			name = ""
		}
	}
	done()
	if len(flags) == 0 {
		t.Fatalf("tickfan %s -h lists no flag:\n%s", strings.Join(args, " "), out.String())
	}
	return flags
}

// zeroDefaults are the spellings of a default that -h does not print.
var zeroDefaults = []string{"", "0", "false", "0s"}

// TestDocConfigServeFlags holds docs/CONFIG.md to every flag of tickfan
// serve: each is documented with its environment variable and the default
// its FlagSet has, and the doc names no flag serve lacks.
func TestDocConfigServeFlags(t *testing.T) {
	doc := readConfigDoc(t)["serve"]
	fs, _ := newServeFlags(io.Discard)
	have := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) {
		have[f.Name] = true
		row, ok := doc[f.Name]
		switch {
		case !ok:
			t.Errorf("tickfan serve --%s (default %q) is missing from %s", f.Name, f.DefValue, configDoc)
		case row.env != envName(f.Name):
			t.Errorf("%s:%d: --%s: environment %q, want %s", configDoc, row.line, f.Name, row.env, envName(f.Name))
		case row.def != f.DefValue:
			t.Errorf("%s:%d: --%s: default %q, the flag's is %q", configDoc, row.line, f.Name, row.def, f.DefValue)
		}
	})
	for name, row := range doc {
		if !have[name] && !docOnlyFlags["serve "+name] {
			t.Errorf("%s:%d: documents tickfan serve --%s, which serve does not have", configDoc, row.line, name)
		}
	}
}

// TestDocConfigToolFlags holds docs/CONFIG.md to the flags of the other
// commands, as their -h prints them (sub's FlagSet is built inside sub).
func TestDocConfigToolFlags(t *testing.T) {
	doc := readConfigDoc(t)
	for _, cmd := range []string{"sub", "pub", "token", "bench", "bench report", "bench versus", "bench echo", "replay"} {
		t.Run(cmd, func(t *testing.T) {
			rows := doc[cmd]
			if rows == nil {
				t.Fatalf("%s has no section or rows for tickfan %s", configDoc, cmd)
			}
			flags := helpFlags(t, strings.Fields(cmd)...)
			for name, h := range flags {
				row, ok := rows[name]
				wantEnv := envName(name)
				if noEnvCommands[cmd] {
					wantEnv = "none"
				}
				switch {
				case !ok:
					t.Errorf("tickfan %s %s is missing from %s", cmd, dashes(name), configDoc)
				case row.env != wantEnv:
					t.Errorf("%s:%d: tickfan %s %s: environment %q, want %s", configDoc, row.line, cmd, dashes(name), row.env, wantEnv)
				case h.zero && !slices.Contains(zeroDefaults, row.def):
					t.Errorf("%s:%d: tickfan %s %s: default %q, but -h shows none (a zero value: one of %q)", configDoc, row.line, cmd, dashes(name), row.def, zeroDefaults)
				case !h.zero && row.def != h.def:
					t.Errorf("%s:%d: tickfan %s %s: default %q, -h says %q", configDoc, row.line, cmd, dashes(name), row.def, h.def)
				}
			}
			for name, row := range rows {
				if _, ok := flags[name]; !ok && !docOnlyFlags[cmd+" "+name] {
					t.Errorf("%s:%d: documents tickfan %s %s, which it does not have", configDoc, row.line, cmd, dashes(name))
				}
			}
		})
	}
}
