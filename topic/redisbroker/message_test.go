package redisbroker

import (
	"strconv"
	"testing"
)

func TestParseMessage(t *testing.T) {
	p, err := parseMessage("a", "E\n7\nsm\nline1\nline2")
	if err != nil || p.Epoch != "E" || p.Seq != 7 || !p.Snap || !p.DataMsgpack || string(p.Data) != "line1\nline2" {
		t.Fatalf("parse: %+v %v", p, err)
	}
	for _, bad := range []string{"", "E\n7\n", "E\nx\n\nd", "\n1\n\nd", "E\n0\n\nd", "E\n-1\n\nd"} {
		if _, err := parseMessage("a", bad); err == nil {
			t.Errorf("parseMessage(%q) took it", bad)
		}
	}
}

func TestSlotOf(t *testing.T) {
	// Values CLUSTER KEYSLOT of redis-server 7.0 gives.
	for key, want := range map[string]uint16{"foo": 12182, "bar": 5061, "{user1000}.following": 3443, "tf:{foo}:h": 12182, "a{}b": 13694, "{}": 15257, "x{y}": 12222} {
		if got := slotOf(key); got != want {
			t.Errorf("slotOf(%q) = %d, want %d", key, got, want)
		}
	}
}

// FuzzParseMessage: whatever a channel carries (anyone with access to
// Redis may publish on it), the parser returns a publication whose fields
// say back what the message held, or an error; it never panics.
func FuzzParseMessage(f *testing.F) {
	f.Add("E\n1\n\n{}")
	f.Add("E\n18446744073709551615\nsm\n\x81\xa1a\x01")
	f.Add("\n\n\n")
	f.Fuzz(func(t *testing.T, msg string) {
		p, err := parseMessage("t", msg)
		if err != nil {
			return
		}
		back := p.Epoch + "\n" + strconv.FormatUint(p.Seq, 10) + "\n"
		if len(msg) < len(back) || msg[:len(back)] != back || p.Seq == 0 || p.Epoch == "" {
			t.Fatalf("%q parsed as %q/%d", msg, p.Epoch, p.Seq)
		}
	})
}
