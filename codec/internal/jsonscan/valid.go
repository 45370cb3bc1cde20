package jsonscan

import "encoding/json"

// maxFastDepth is the nesting Valid checks itself, one bit per level in a
// word; deeper text, rare in messages, goes to encoding/json.
const maxFastDepth = 64

// Valid reports whether b is one JSON value with only white space around
// it, exactly as encoding/json's Valid does (strings may hold any bytes but
// control characters, as there; nesting is bounded as there), but in one
// pass without a state machine per byte: the command decoder checks every
// message before it scans it.
func Valid(b []byte) bool {
	var objects uint64 // a bit per open container, innermost lowest: 1 for an object
	depth := 0
	i := 0
	for {
		// A value starts at i, after white space.
		i = SkipWS(b, i)
		if i >= len(b) {
			return false
		}
		ok := true
		switch c := b[i]; {
		case c == '{' || c == '[':
			if depth == maxFastDepth {
				return json.Valid(b)
			}
			depth++
			objects <<= 1
			if c == '{' {
				objects |= 1
			}
			i = SkipWS(b, i+1)
			if i < len(b) && b[i] == c+2 { // '}' or ']': empty
				i++
				depth--
				objects >>= 1
				break
			}
			if c == '{' {
				if i, ok = validKey(b, i); !ok {
					return false
				}
			}
			continue
		case c == '"':
			i, ok = validString(b, i)
		case c == 't':
			i, ok = validLiteral(b, i, "true")
		case c == 'f':
			i, ok = validLiteral(b, i, "false")
		case c == 'n':
			i, ok = validLiteral(b, i, "null")
		case c == '-' || c >= '0' && c <= '9':
			i, ok = validNumber(b, i)
		default:
			return false
		}
		if !ok {
			return false
		}
		// After a value: close the containers it ends, until a comma
		// asks for the next value.
		for {
			i = SkipWS(b, i)
			if depth == 0 {
				return i == len(b)
			}
			if i >= len(b) {
				return false
			}
			inObject := objects&1 != 0
			if c := b[i]; c == ',' {
				if inObject {
					if i, ok = validKey(b, i+1); !ok {
						return false
					}
				} else {
					i++
				}
				break
			} else if inObject && c == '}' || !inObject && c == ']' {
				i++
				depth--
				objects >>= 1
				continue
			}
			return false
		}
	}
}

// validKey checks a member's key and colon at or after b[i] and returns
// the index just past the colon.
func validKey(b []byte, i int) (int, bool) {
	i = SkipWS(b, i)
	if i >= len(b) || b[i] != '"' {
		return i, false
	}
	i, ok := validString(b, i)
	if !ok {
		return i, false
	}
	i = SkipWS(b, i)
	if i >= len(b) || b[i] != ':' {
		return i, false
	}
	return i + 1, true
}

// validString checks the string that opens at b[i] and returns the index
// just past it.
func validString(b []byte, i int) (int, bool) {
	for i++; i < len(b); {
		switch c := b[i]; {
		case c == '"':
			return i + 1, true
		case c < 0x20:
			return i, false
		case c == '\\':
			if i+1 >= len(b) {
				return i, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if len(b)-i < 6 || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					return i, false
				}
				i += 6
			default:
				return i, false
			}
		default:
			i++
		}
	}
	return i, false
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// validNumber checks the number that starts at b[i] and returns the index
// just past it: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func validNumber(b []byte, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return i, false
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	default:
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return i, false
		}
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return i, false
		}
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	}
	return i, true
}

func validLiteral(b []byte, i int, word string) (int, bool) {
	if len(b)-i < len(word) || string(b[i:i+len(word)]) != word {
		return i, false
	}
	return i + len(word), true
}
