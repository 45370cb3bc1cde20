package e2e

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// kv is one key and value of an ordered message.
type kv struct {
	k string
	v any
}

// ordered encodes a map with its keys in the given order, in the
// transport's format: where the id stands relative to a bad field must
// not matter.
func ordered(t testing.TB, tr transport, fields ...kv) []byte {
	t.Helper()
	if tr.name == "ws-json" {
		var b bytes.Buffer
		b.WriteByte('{')
		for i, f := range fields {
			if i > 0 {
				b.WriteByte(',')
			}
			k, _ := json.Marshal(f.k)
			v, err := json.Marshal(f.v)
			if err != nil {
				t.Fatal(err)
			}
			b.Write(k)
			b.WriteByte(':')
			b.Write(v)
		}
		b.WriteByte('}')
		return b.Bytes()
	}
	var b bytes.Buffer
	enc := msgpack.NewEncoder(&b)
	if err := enc.EncodeMapLen(len(fields)); err != nil {
		t.Fatal(err)
	}
	for _, f := range fields {
		if err := enc.EncodeString(f.k); err != nil {
			t.Fatal(err)
		}
		if err := enc.Encode(f.v); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// TestErrorKeepsID: a map whose id is a valid unsigned integer gets its
// error reply with that id, whatever else is wrong in it and wherever the
// id stands (PROTOCOL.md "Messages"); a client waiting on the id would
// otherwise wait forever.
func TestErrorKeepsID(t *testing.T) {
	t.Parallel()
	n := start(t)
	check := healthy(t, n)
	cases := []struct {
		name   string
		fields []kv
		code   int
	}{
		{"topics a string", []kv{{"op", "sub"}, {"id", 72}, {"topics", "book.BTCUSDT"}}, 400},
		{"topics of numbers", []kv{{"op", "sub"}, {"topics", []int{1, 2}}, {"id", 73}}, 400},
		{"pull since a string", []kv{{"op", "pull"}, {"t", "a.b"}, {"since", "abc"}, {"id", 74}}, 400},
		{"sub since not a position", []kv{{"op", "sub"}, {"topics", []string{"a.b"}}, {"since", map[string]any{"a.b": 5}}, {"id", 75}}, 400},
		{"op a number", []kv{{"op", 5}, {"id", 76}}, 400},
		{"token a number", []kv{{"op", "auth"}, {"token", 7}, {"id", 77}}, 400},
		{"d before id", []kv{{"op", "pub"}, {"t", "a.b"}, {"k", 1}, {"d", 1}, {"id", 78}}, 400},
		{"id 0 last", []kv{{"limit", -1}, {"op", "pull"}, {"id", 0}}, 400},
		{"unknown op", []kv{{"op", "nope"}, {"id", 79}}, 404},
		{"op missing", []kv{{"topics", []string{"a"}}, {"id", 80}}, 400},
	}
	eachTransport(t, func(t *testing.T, tr transport) {
		c := tr.dial(t, n)
		for _, tc := range cases {
			c.mustSendRaw(t, ordered(t, tr, tc.fields...))
			m := c.next(t)
			var id uint64
			for _, f := range tc.fields {
				if f.k == "id" {
					id = uint64(f.v.(int))
				}
			}
			if err := checkReply(m, id); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if err := checkErr(m, tc.code); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
		}
		// An id that is itself not an unsigned integer cannot be echoed.
		for _, bad := range []any{-1, "7", 1.5} {
			c.mustSendRaw(t, ordered(t, tr, kv{"op", "ping"}, kv{"id", bad}))
			m := c.next(t)
			if !hasKeys(m, "err") {
				t.Fatalf("id %v → %s, want an error without id", bad, m)
			}
			if err := checkErr(m, 400); err != nil {
				t.Fatal(err)
			}
		}
		c.alive(t)
	})
	check()
}
