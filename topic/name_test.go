package topic

import (
	"errors"
	"strings"
	"testing"
)

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"empty", "", false},
		{"one byte", "a", true},
		{"one digit", "7", true},
		{"typical", "ticker.BTCUSDT", true},
		{"private", "priv.orders.42", true},
		{"every special", "a.b_c:d@e-f", true},
		{"only specials", "_:@-", true},
		{"specials in segments", "-._:.@", true},
		{"one-byte segments", "a.b.c", true},
		{"double dot", "bad..topic", false},
		{"leading dot", ".a", false},
		{"trailing dot", "a.", false},
		{"only a dot", ".", false},
		{"only dots", "...", false},
		{"triple dot inside", "a...b", false},
		{"200 bytes ending in a dot", strings.Repeat("x", MaxNameLen-1) + ".", false},
		{"every letter and digit", "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", true},
		{"200 bytes", strings.Repeat("x", MaxNameLen), true},
		{"201 bytes", strings.Repeat("x", MaxNameLen+1), false},
		{"much too long", strings.Repeat("x", 10_000), false},
		{"space", "a b", false},
		{"leading space", " a", false},
		{"slash", "a/b", false},
		{"star", "ticker.*", false},
		{"greater", "book.>", false},
		{"comma", "a,b", false},
		{"non-ASCII", "tickér", false},
		{"NUL", "a\x00b", false},
		{"newline", "a\n", false},
		{"DEL", "a\x7f", false},
		{"byte 0xff", "a\xff", false},
		{"plus", "a+b", false},
		{"hash", "a#b", false},
		{"quote", `a"b`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidName(tt.in)
			if tt.ok {
				if err != nil {
					t.Fatalf("ValidName(%q) = %v, want nil", tt.in, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ValidName(%q) = nil, want an error", tt.in)
			}
			if !errors.Is(err, ErrBadName) {
				t.Fatalf("ValidName(%q) = %v, does not wrap ErrBadName", tt.in, err)
			}
		})
	}
}

// TestValidNameEveryByte checks the whole byte table against the rule
// [A-Za-z0-9._:@-], byte by byte, at the start, middle and end of a name.
// A dot separates segments, so it is allowed only in the middle.
func TestValidNameEveryByte(t *testing.T) {
	allowed := func(c byte) bool {
		return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("._:@-", c) >= 0
	}
	n := 0
	for i := 0; i < 256; i++ {
		c := byte(i)
		for pos, name := range []string{string([]byte{c}), "a" + string([]byte{c}), "a" + string([]byte{c}) + "b"} {
			ok := allowed(c) && (c != '.' || pos == 2)
			err := ValidName(name)
			if ok && err != nil {
				t.Errorf("ValidName(%q) = %v, want nil", name, err)
			}
			if !ok && !errors.Is(err, ErrBadName) {
				t.Errorf("ValidName(%q) = %v, want ErrBadName", name, err)
			}
		}
		if allowed(c) {
			n++
		}
	}
	if n != 26+26+10+5 {
		t.Fatalf("%d allowed bytes, want 67", n)
	}
}

func TestValidNameDoesNotAllocate(t *testing.T) {
	name := "ticker.BTCUSDT"
	if n := testing.AllocsPerRun(100, func() { _ = ValidName(name) }); n != 0 {
		t.Fatalf("ValidName allocates %v times per call", n)
	}
}
