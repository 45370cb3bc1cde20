package jsonscan

import (
	"encoding/json"
	"strings"
	"testing"
)

var validSeeds = []string{
	``, ` `, `{}`, `[]`, ` {"a" : [1, -2.5e+3, "x\u00e9\n", true, false, null, {}] } `, `"\ud800"`, "\"\xff\"",
	`{"a":1,}`, `[1,]`, `[,1]`, `{"a" 1}`, `{1:2}`, `01`, `-`, `1.`, `1e`, `.5`, `-0.0e-0`, `1 2`, `{} {}`,
	`tru`, `truex`, `nul`, `"\x"`, `"\u12g4"`, "\"a\x01\"", `"unterminated`, `{"a":{"b":[{"c":[]}]}}`,
	"\ufeff{}", `[1}`, `{"a":1]`, `]`, `}`, `[[[`, `"\\"`, `"\/"`, "[\t\r\n]",
}

// TestValidDepth: past what Valid checks itself, and at encoding/json's own
// nesting limit, the answer is still encoding/json's.
func TestValidDepth(t *testing.T) {
	for _, n := range []int{63, 64, 65, 10000, 10001} {
		for _, open := range []string{"[", `{"a":`} {
			closer := "]"
			if open != "[" {
				closer = "}"
			}
			b := []byte(strings.Repeat(open, n) + "1" + strings.Repeat(closer, n))
			if Valid(b) != json.Valid(b) {
				t.Errorf("%d levels of %s: Valid %v, encoding/json %v", n, open, Valid(b), json.Valid(b))
			}
		}
	}
}

func TestValidSeeds(t *testing.T) {
	for _, s := range validSeeds {
		if Valid([]byte(s)) != json.Valid([]byte(s)) {
			t.Errorf("Valid(%q) = %v, encoding/json %v", s, Valid([]byte(s)), json.Valid([]byte(s)))
		}
	}
}

func FuzzValid(f *testing.F) {
	for _, s := range validSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := Valid(b), json.Valid(b); got != want {
			t.Fatalf("Valid(%q) = %v, encoding/json %v", b, got, want)
		}
	})
}
