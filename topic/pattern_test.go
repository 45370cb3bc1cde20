package topic

import (
	"errors"
	"strings"
	"testing"
)

func mustPattern(t testing.TB, s string) Pattern {
	t.Helper()
	p, err := ParsePattern(s)
	if err != nil {
		t.Fatalf("ParsePattern(%q): %v", s, err)
	}
	return p
}

func TestPatternMatch(t *testing.T) {
	tests := []struct {
		pattern string
		yes     []string
		no      []string
	}{
		{
			pattern: "ticker.*",
			yes:     []string{"ticker.BTCUSDT", "ticker.a", "ticker.x-y:z@w_1"},
			no:      []string{"ticker", "ticker.", "ticker.a.b", "tickers.a", "ticke.a", "book.a", "", ".ticker.a", "ticker..a", "xticker.a"},
		},
		{
			pattern: "book.>",
			yes:     []string{"book.a", "book.a.b", "book.BTCUSDT.L2.100"},
			no:      []string{"book", "book.", "books.a", "a.book.b", ""},
		},
		{
			pattern: ">",
			yes:     []string{"a", "a.b", "ticker.BTCUSDT", "priv.orders.42"},
			no:      []string{""},
		},
		{
			pattern: "*",
			yes:     []string{"a", "ticker"},
			no:      []string{"", "a.b", "a.", ".a", "."},
		},
		{
			pattern: "priv.orders.*",
			yes:     []string{"priv.orders.42", "priv.orders.alice"},
			no:      []string{"priv.orders", "priv.orders.", "priv.orders.42.x", "priv.trades.42", "pub.orders.42", "priv.orders42"},
		},
		{
			pattern: "priv.*.42",
			yes:     []string{"priv.orders.42", "priv.trades.42"},
			no:      []string{"priv.orders.43", "priv.42", "priv.a.b.42", "priv..42"},
		},
		{
			pattern: "*.*",
			yes:     []string{"a.b", "ticker.BTC"},
			no:      []string{"a", "a.b.c", "a.", ".b"},
		},
		{
			pattern: "*.>",
			yes:     []string{"a.b", "a.b.c"},
			no:      []string{"a", "a."},
		},
		{
			pattern: "ticker.BTCUSDT",
			yes:     []string{"ticker.BTCUSDT"},
			no:      []string{"ticker.btcusdt", "ticker.BTCUSD", "ticker.BTCUSDTX", "ticker.BTCUSDT.x", "ticker", "ticker.*", "x.ticker.BTCUSDT"},
		},
		{
			pattern: "a",
			yes:     []string{"a"},
			no:      []string{"", "b", "a.b", "aa", "a."},
		},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			p := mustPattern(t, tt.pattern)
			for _, name := range tt.yes {
				if !p.match(name) {
					t.Errorf("%q does not match %q, want a match", tt.pattern, name)
				}
			}
			for _, name := range tt.no {
				if p.match(name) {
					t.Errorf("%q matches %q, want no match", tt.pattern, name)
				}
			}
		})
	}
}

func TestZeroPatternMatchesNothing(t *testing.T) {
	var p Pattern
	for _, name := range []string{"", "a", "a.b"} {
		if p.match(name) {
			t.Errorf("zero Pattern matches %q", name)
		}
	}
	var ps Patterns
	if ps.Match("a") {
		t.Error("nil Patterns matches \"a\"")
	}
}

func TestParsePatternErrors(t *testing.T) {
	for _, s := range []string{
		"",
		".",
		"a..b",
		".a",
		"a.",
		"a.>.b",
		">.a",
		"a b",
		"a.*b",
		"a*",
		"a.>>",
		"**",
		"a/b",
		"tickér.*",
		"a,b",
		strings.Repeat("x", MaxNameLen+1),
	} {
		if p, err := ParsePattern(s); err == nil {
			t.Errorf("ParsePattern(%q) = %v, nil; want an error", s, p)
		}
	}
}

func TestParsePatternBadSegmentWrapsErrBadName(t *testing.T) {
	_, err := ParsePattern("ticker.a b")
	if !errors.Is(err, ErrBadName) {
		t.Fatalf("ParsePattern(\"ticker.a b\") = %v, want ErrBadName wrapped", err)
	}
	if !strings.Contains(err.Error(), "ticker.a b") {
		t.Errorf("error %q does not name the pattern", err)
	}
}

func TestPatternString(t *testing.T) {
	for _, s := range []string{"a", "ticker.*", "book.>", ">", "priv.orders.*", "a.*.c.>"} {
		if got := mustPattern(t, s).String(); got != s {
			t.Errorf("ParsePattern(%q).String() = %q", s, got)
		}
	}
}

func TestParsePatterns(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{" ", nil},
		{",", nil},
		{" , ,, ", nil},
		{"ticker.*", []string{"ticker.*"}},
		{"ticker.*,book.>", []string{"ticker.*", "book.>"}},
		{" ticker.* , book.> ,", []string{"ticker.*", "book.>"}},
		{",ticker.*,,priv.orders.*,", []string{"ticker.*", "priv.orders.*"}},
		{"\tticker.*\n,a", []string{"ticker.*", "a"}},
	}
	for _, tt := range tests {
		ps, err := ParsePatterns(tt.in)
		if err != nil {
			t.Errorf("ParsePatterns(%q): %v", tt.in, err)
			continue
		}
		var got []string
		for _, p := range ps {
			got = append(got, p.String())
		}
		if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
			t.Errorf("ParsePatterns(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParsePatternsErrors(t *testing.T) {
	for _, s := range []string{"ticker.*,a..b", "a b", "ticker.*, book.>.x", "a,>.b"} {
		if ps, err := ParsePatterns(s); err == nil {
			t.Errorf("ParsePatterns(%q) = %v, nil; want an error", s, ps)
		} else if ps != nil {
			t.Errorf("ParsePatterns(%q) returned %v with the error %v", s, ps, err)
		}
	}
}

func TestPatternsMatchAny(t *testing.T) {
	ps, err := ParsePatterns("ticker.*, book.>, status")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		"ticker.BTC":   true,
		"book.BTC.L2":  true,
		"status":       true,
		"ticker":       false,
		"book":         false,
		"status.x":     false,
		"trades.BTC":   false,
		"ticker.BTC.x": false,
		"":             false,
	} {
		if got := ps.Match(name); got != want {
			t.Errorf("Patterns.Match(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestPatternMatchDoesNotAllocate(t *testing.T) {
	ps, err := ParsePatterns("ticker.*,book.>,priv.orders.*,a.b.c")
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"ticker.BTCUSDT", "book.a.b.c", "priv.orders.42", "a.b.c", "nomatch.x.y", "ticker", ""}
	for _, p := range ps {
		for _, name := range names {
			if n := testing.AllocsPerRun(100, func() { _ = p.match(name) }); n != 0 {
				t.Errorf("%q.Match(%q) allocates %v times", p, name, n)
			}
		}
	}
	for _, name := range names {
		if n := testing.AllocsPerRun(100, func() { _ = ps.Match(name) }); n != 0 {
			t.Errorf("Patterns.Match(%q) allocates %v times", name, n)
		}
	}
}
