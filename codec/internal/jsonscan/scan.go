// Package jsonscan checks JSON text (Valid: encoding/json's answer, in one
// pass) and walks text that passed: it finds where tokens and values end,
// steps through the members of an object and the elements of an array, and
// reads strings and unsigned integers, without building Go values. Since
// the text is known to be valid, the walk checks only what it needs to
// find the end of a token; given text that is not valid, its results mean
// nothing (SkipWS alone reads any text). It knows nothing of tickfan's
// messages.
package jsonscan

import (
	"math"
	"unicode/utf8"
)

// SkipWS returns the index of the first byte at or after b[i] that is not
// JSON white space.
func SkipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// StringEnd returns the index just past the string that opens at b[i],
// and whether it holds a backslash escape.
func StringEnd(b []byte, i int) (end int, escaped bool) {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			escaped = true
			i++
		case '"':
			return i + 1, escaped
		}
	}
	return len(b), escaped
}

// NumberEnd returns the index just past the number that starts at b[i].
func NumberEnd(b []byte, i int) int {
	for ; i < len(b); i++ {
		switch c := b[i]; {
		case c >= '0' && c <= '9', c == '-', c == '+', c == '.', c == 'e', c == 'E':
		default:
			return i
		}
	}
	return i
}

// SkipValue returns the index just past the value that starts at b[i].
func SkipValue(b []byte, i int) int {
	switch c := b[i]; {
	case c == '"':
		end, _ := StringEnd(b, i)
		return end
	case c == '{' || c == '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i, _ = StringEnd(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	case c == 't' || c == 'n':
		return i + 4
	case c == 'f':
		return i + 5
	}
	return NumberEnd(b, i)
}

// Open returns the index just past the opening byte open ('{' or '[') of
// the object or array at b[i], where Member or Element reads its first
// entry; ok is false when b[i] is not open.
func Open(b []byte, i int, open byte) (next int, ok bool) {
	if i >= len(b) || b[i] != open {
		return i, false
	}
	return i + 1, true
}

// Member reads the object member at or after b[i], where Open or the
// previous Member left off: its key with quotes and escapes as sent, its
// value, and the index to read the next member from. ok is false past the
// last member.
func Member(b []byte, i int) (key, val []byte, next int, ok bool) {
	i = SkipWS(b, i)
	if i < len(b) && b[i] == ',' {
		i = SkipWS(b, i+1)
	}
	if i >= len(b) || b[i] != '"' {
		return nil, nil, len(b), false
	}
	kend, _ := StringEnd(b, i)
	key = b[i:kend]
	i = SkipWS(b, kend) + 1 // the colon
	i = SkipWS(b, i)
	vend := SkipValue(b, i)
	return key, b[i:vend], vend, true
}

// Element reads the array element at or after b[i], where Open or the
// previous Element left off, and the index to read the next one from. ok
// is false past the last element.
func Element(b []byte, i int) (val []byte, next int, ok bool) {
	i = SkipWS(b, i)
	if i < len(b) && b[i] == ',' {
		i = SkipWS(b, i+1)
	}
	if i >= len(b) || b[i] == ']' {
		return nil, len(b), false
	}
	end := SkipValue(b, i)
	return b[i:end], end, true
}

// Plain reports whether the string content s (between the quotes) is its
// own text: no escapes and valid UTF-8. It is small enough to inline, so
// the short ASCII keys and names of a message cost no call.
func Plain(s []byte) bool {
	for _, c := range s {
		if c == '\\' || c >= utf8.RuneSelf {
			return plainSlow(s)
		}
	}
	return true
}

// plainSlow is Plain of s that is not all ASCII without escapes; kept out
// of line so that Plain inlines.
//
//go:noinline
func plainSlow(s []byte) bool { return !containsBackslash(s) && utf8.Valid(s) }

func containsBackslash(s []byte) bool {
	for _, c := range s {
		if c == '\\' {
			return true
		}
	}
	return false
}

// AppendText appends the text of the string content s (between the quotes)
// to dst, resolving escapes and replacing invalid UTF-8 and lone surrogates
// with U+FFFD, as encoding/json does.
func AppendText(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\':
			i++
			switch s[i] {
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				r := hex4(s[i+1:])
				i += 4
				if isSurrogate(r) {
					r2 := rune(-1)
					if i+6 < len(s) && s[i+1] == '\\' && s[i+2] == 'u' {
						r2 = hex4(s[i+3:])
					}
					if r <= 0xdbff && r2 >= 0xdc00 && r2 <= 0xdfff {
						r = (r-0xd800)<<10 | (r2 - 0xdc00) + 0x10000
						i += 6
					} else {
						r = utf8.RuneError
					}
				}
				dst = utf8.AppendRune(dst, r)
			default: // '"', '\\', '/'
				dst = append(dst, s[i])
			}
			i++
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			i++
		default:
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, "\uFFFD"...)
			} else {
				dst = append(dst, s[i:i+size]...)
			}
			i += size
		}
	}
	return dst
}

func isSurrogate(r rune) bool { return r >= 0xd800 && r <= 0xdfff }

func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		default:
			c = c - 'A' + 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// Text returns the text of the quoted string q, in a string of its own.
func Text(q []byte) string {
	s := q[1 : len(q)-1]
	if Plain(s) {
		return string(s)
	}
	return string(AppendText(nil, s))
}

// Uint returns the value of val, a number written as an unsigned integer:
// digits only, no sign, fraction or exponent, at most math.MaxUint64.
func Uint(val []byte) (uint64, bool) {
	var u uint64
	for _, c := range val {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if u > (math.MaxUint64-d)/10 {
			return 0, false
		}
		u = u*10 + d
	}
	return u, len(val) > 0
}
