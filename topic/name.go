package topic

import (
	"errors"
	"fmt"
)

// MaxNameLen is the longest topic name, in bytes.
const MaxNameLen = 200

// ErrBadName is returned (wrapped) for a topic name that breaks the rules.
var ErrBadName = errors.New("bad topic name")

// nameByte marks the bytes a topic name may hold: [A-Za-z0-9._:@-].
var nameByte = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "._:@-" {
		t[c] = true
	}
	return t
}()

// ValidName reports whether name is 1 to 200 bytes of [A-Za-z0-9._:@-] in
// dot-separated segments, none empty (no leading, trailing or double dot),
// and if not, why. A name with an empty segment could be neither matched by
// a pattern nor granted by a token, so it is refused like any other bad name.
func ValidName(name string) error {
	if len(name) == 0 {
		return fmt.Errorf("%w: empty", ErrBadName)
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrBadName, len(name), MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		if !nameByte[name[i]] {
			return fmt.Errorf("%w: byte %q at %d is not one of [A-Za-z0-9._:@-]", ErrBadName, name[i], i)
		}
		if name[i] == '.' && (i == 0 || i == len(name)-1 || name[i-1] == '.') {
			return fmt.Errorf("%w: empty segment at %d (no leading, trailing or double dot)", ErrBadName, i)
		}
	}
	return nil
}
