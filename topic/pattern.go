package topic

import (
	"fmt"
	"strings"
)

// Pattern matches topic names segment by segment (segments are separated by
// '.'): "*" matches exactly one segment and a final ">" matches one or more.
// Any other segment matches itself. The zero Pattern matches nothing.
type Pattern struct {
	segs []string
}

// ParsePattern checks and compiles a pattern such as "ticker.*" or "book.>".
func ParsePattern(s string) (Pattern, error) {
	if s == "" {
		return Pattern{}, fmt.Errorf("empty pattern")
	}
	segs := strings.Split(s, ".")
	for i, seg := range segs {
		switch {
		case seg == "":
			return Pattern{}, fmt.Errorf("pattern %q: empty segment", s)
		case seg == ">" && i != len(segs)-1:
			return Pattern{}, fmt.Errorf("pattern %q: '>' must be the last segment", s)
		case seg == "*" || seg == ">":
		default:
			if err := ValidName(seg); err != nil {
				return Pattern{}, fmt.Errorf("pattern %q: %w", s, err)
			}
		}
	}
	return Pattern{segs: segs}, nil
}

// match reports whether name matches the pattern. It does not allocate.
func (p Pattern) match(name string) bool {
	if len(p.segs) == 0 {
		return false
	}
	for i, seg := range p.segs {
		if seg == ">" {
			return name != ""
		}
		if name == "" && i > 0 {
			return false
		}
		var head string
		if j := strings.IndexByte(name, '.'); j >= 0 {
			head, name = name[:j], name[j+1:]
			if name == "" {
				return false // trailing dot: an empty last segment
			}
		} else {
			head, name = name, ""
		}
		if head == "" || (seg != "*" && seg != head) {
			return false
		}
		if name == "" && i < len(p.segs)-1 {
			return false
		}
	}
	return name == ""
}

func (p Pattern) String() string { return strings.Join(p.segs, ".") }

// Patterns is a list of patterns; a name matches the list if it matches any.
type Patterns []Pattern

// ParsePatterns compiles a comma-separated list; an empty string is the empty list.
func ParsePatterns(s string) (Patterns, error) {
	var ps Patterns
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := ParsePattern(f)
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// Match reports whether name matches any pattern of the list.
func (ps Patterns) Match(name string) bool {
	for _, p := range ps {
		if p.match(name) {
			return true
		}
	}
	return false
}
