package codec

import (
	"math"
	"reflect"
	"testing"

	"github.com/tickfan/tickfan/topic"
)

// TestDecodeFormatsAgree: the same message in JSON and in msgpack decodes
// to the same command, or fails with the same error and the same id, since
// one decoder reads both.
func TestDecodeFormatsAgree(t *testing.T) {
	msgs := []kv{
		{"op", "sub", "id", 1, "topics", []string{"a", "b"}, "since", kv{"a", kv{"e", "x", "s", 3}, "b", nil}},
		{"since", kv{"s", 9}, "op", "pull", "t", "a", "limit", uint64(math.MaxUint64), "id", 2},
		{"op", "pub", "t", "a", "d", nil, "k", "snap", "token", nil},
		{"op", "auth", "token", "tok", "unknown", kv{"x", []any{1, nil}}},
		{"id", 1, "id", 2, "op", "ping"},
		// Errors, with the id before and after the bad field.
		{"op", 5, "id", 3},
		{"id", 3, "topics", []any{"a", 1}},
		{"topics", "a", "id", 4},
		{"op", "pull", "since", kv{"e", 1}, "id", 5},
		{"op", "sub", "since", kv{"a", 5}, "id", 6},
		{"op", "sub", "since", []any{}, "id", 7},
		{"limit", -1, "id", 8},
		{"limit", 1.5},
		{"k", true, "id", "nine"},
		{"token", []any{}, "id", -1},
		{"id", 1, "id", "x"},
		{"t", kv{}, "id", nil},
	}
	for _, m := range msgs {
		var cj, cm Command
		ej := Decode(WSJSON, marshal(t, WSJSON, m), &cj)
		em := Decode(WSMsgpack, marshal(t, WSMsgpack, m), &cm)
		if (ej == nil) != (em == nil) || ej != nil && ej.Error() != em.Error() {
			t.Errorf("%v: JSON error %v, msgpack error %v", m, ej, em)
			continue
		}
		if (cj.Data == nil) != (cm.Data == nil) || cm.Data != nil && !cm.DataMsgpack {
			t.Errorf("%v: Data %q and %x", m, cj.Data, cm.Data)
		}
		cj.Data, cm.Data, cj.DataMsgpack, cm.DataMsgpack = nil, nil, false, false
		if !reflect.DeepEqual(cj, cm) {
			t.Errorf("%v:\nJSON    %+v\nmsgpack %+v", m, cj, cm)
		}
	}
}

// TestDecodeKeys: JSON keys are read as encoding/json reads them (escapes
// resolved, bad UTF-8 replaced); msgpack keys that are not strings are no
// keys of ours, except in "since", where each key must name a topic.
func TestDecodeKeys(t *testing.T) {
	type pos = topic.Position
	var cmd Command
	body := []byte("{\"\\u006fp\":\"sub\",\"since\":{\"a\\u00e9\":{\"\\u0065\":\"x\",\"s\":1},\"b\xff\":{\"s\":2}}}")
	if err := Decode(WSJSON, body, &cmd); err != nil {
		t.Fatal(err)
	}
	want := map[string]pos{"aé": {Epoch: "x", Seq: 1}, "b\uFFFD": {Seq: 2}}
	if cmd.Op != "sub" || !reflect.DeepEqual(cmd.Since, want) {
		t.Errorf("got op %q since %v, want sub %v", cmd.Op, cmd.Since, want)
	}

	mp := func(v any) []byte { return marshal(t, WSMsgpack, v) }
	if err := Decode(TCPMsgpack, mp(kv{1, "x", "op", "pull", "since", kv{true, 5, "s", 4}}), &cmd); err != nil ||
		cmd.Op != "pull" || *cmd.From != (pos{Seq: 4}) {
		t.Errorf("non-string keys: %v %+v", err, cmd)
	}
	if err := Decode(TCPMsgpack, mp(kv{"op", "sub", "since", kv{1, kv{"s", 1}}}), &cmd); err != errSubSince {
		t.Errorf("a since key that is not a string: %v", err)
	}
	if err := Decode(TCPMsgpack, mp(kv{"op", "sub", "since", kv{1, nil, "a", kv{"s", 1}}}), &cmd); err != nil ||
		!reflect.DeepEqual(cmd.Since, map[string]pos{"a": {Seq: 1}}) {
		t.Errorf("a null since entry under a non-string key: %v %+v", err, cmd.Since)
	}
}

// TestDecodeEscapedKeyAllocs: an escaped key costs no allocation of its
// own, only the strings the command keeps do.
func TestDecodeEscapedKeyAllocs(t *testing.T) {
	var cmd Command
	body := []byte(`{"\u006fp":"ping","i\u0064":3}`)
	allocs := testing.AllocsPerRun(100, func() {
		if err := Decode(WSJSON, body, &cmd); err != nil || cmd.Op != "ping" || cmd.ID != 3 {
			t.Fatalf("%v %+v", err, cmd)
		}
	})
	if allocs > 1 {
		t.Errorf("Decode allocates %v times, want 1 (the op)", allocs)
	}
}
