package mpack

import (
	"bytes"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSkipEndKey: End and Key, which trust their input, find the same ends
// as Skip, which checks it; Skip agrees with the reference decoder.
func TestSkipEndKey(t *testing.T) {
	values := []any{
		nil, true, false, 0, 127, 128, -1, -33, 1 << 40, -1 << 40, 1.5, float32(2.5),
		"", "op", string(bytes.Repeat([]byte("s"), 31)), string(bytes.Repeat([]byte("s"), 300)),
		[]byte{1, 2}, []any{1, "a", nil}, map[string]any{"a": []any{1, map[string]any{"b": 2}}},
		make([]any, 20), string(bytes.Repeat([]byte("k"), 70000)),
	}
	for _, v := range values {
		b := append(mustMarshal(t, v), 0xc3) // something after the value
		end := Skip(b, 0)
		if end != len(b)-1 {
			t.Errorf("Skip(%T %.20v) = %d, want %d", v, v, end, len(b)-1)
		}
		if got := End(b, 0); got != end {
			t.Errorf("End(%T %.20v) = %d, Skip %d", v, v, got, end)
		}
		s, isStr, kend := Key(b, 0)
		str, want := v.(string)
		if kend != end || isStr != want || isStr && string(s) != str {
			t.Errorf("Key(%T %.20v) = %q %v %d", v, v, s, isStr, kend)
		}
		if Skip(b[:end-1], 0) != -1 {
			t.Errorf("Skip accepted %T %.20v cut short", v, v)
		}
	}
}

func TestSkipJSONable(t *testing.T) {
	ext := []byte{0xd4, 0x01, 0x00}
	mapKey := []byte{0x81, 0x81, 0xa1, 'a', 0x01, 0x01} // {{"a":1}:1}
	for _, b := range [][]byte{ext, mapKey, append([]byte{0x91}, ext...)} {
		if Skip(b, 0) != len(b) || SkipJSONable(b, 0) != -1 {
			t.Errorf("%x: Skip %d, SkipJSONable %d", b, Skip(b, 0), SkipJSONable(b, 0))
		}
	}
	deep := append(bytes.Repeat([]byte{0x91}, MaxDepth+1), 0x01)
	if Skip(deep, 0) != -1 {
		t.Error("Skip accepted nesting past MaxDepth")
	}
}

func TestUintAndHeaders(t *testing.T) {
	for _, v := range []any{uint64(1<<64 - 1), int64(1 << 62), int8(5), uint16(300)} {
		u, ok := Uint(mustMarshal(t, v))
		if !ok || u == 0 {
			t.Errorf("Uint(%v) = %d, %v", v, u, ok)
		}
	}
	for _, v := range []any{-1, int64(-1 << 40), 1.0, "1"} {
		if _, ok := Uint(mustMarshal(t, v)); ok {
			t.Errorf("Uint(%v) accepted", v)
		}
	}
	for _, n := range []int{0, 15, 16, 65535, 65536} {
		if got, _, ok := MapHeader(AppendMapHeader(nil, n), 0); !ok || got != n {
			t.Errorf("map header %d read as %d %v", n, got, ok)
		}
		if got, _, ok := ArrayHeader(AppendArrayHeader(nil, n), 0); !ok || got != n {
			t.Errorf("array header %d read as %d %v", n, got, ok)
		}
		if _, _, ok := ArrayHeader(AppendMapHeader(nil, n), 0); ok {
			t.Errorf("a map header %d read as an array", n)
		}
	}
}
