package jsonscan

import (
	"encoding/json"
	"testing"
)

// TestMembers walks objects as encoding/json reads them.
func TestMembers(t *testing.T) {
	text := []byte(` { "a" : [1, {"x":"}"}], "b\"c":"d\\","e":null ,"f":-1.5e3,"g":{}} `)
	var ref map[string]json.RawMessage
	if err := json.Unmarshal(text, &ref); err != nil {
		t.Fatal(err)
	}
	i, ok := Open(text, SkipWS(text, 0), '{')
	if !ok {
		t.Fatal("not an object")
	}
	n := 0
	for {
		key, val, next, ok := Member(text, i)
		if !ok {
			break
		}
		i = next
		n++
		name := Text(key)
		if want, found := ref[name]; !found || string(want) != string(val) {
			t.Errorf("member %s = %s, encoding/json %s", name, val, want)
		}
	}
	if n != len(ref) {
		t.Errorf("%d members, encoding/json %d", n, len(ref))
	}
	if _, ok := Open(text, 0, '['); ok {
		t.Error("an object opened as an array")
	}
}

func TestElements(t *testing.T) {
	text := []byte(`[ "a" , [1,2], {"b":[3]}, true,false,null, 0 ]`)
	var ref []json.RawMessage
	if err := json.Unmarshal(text, &ref); err != nil {
		t.Fatal(err)
	}
	i, _ := Open(text, 0, '[')
	for k := 0; ; k++ {
		val, next, ok := Element(text, i)
		if !ok {
			if k != len(ref) {
				t.Errorf("%d elements, encoding/json %d", k, len(ref))
			}
			break
		}
		i = next
		if string(val) != string(ref[k]) {
			t.Errorf("element %d = %s, encoding/json %s", k, val, ref[k])
		}
	}
}

// TestText reads strings as encoding/json does, bad UTF-8 and lone
// surrogates included.
func TestText(t *testing.T) {
	for _, q := range []string{`""`, `"plain"`, `"é"`, `"a\"b\\c\/d\b\f\n\r\t"`, `"\u00e9\ud83d\ude00"`,
		`"\ud800"`, `"\ud800x"`, `"\udc00\ud800"`, "\"\xff\"", "\"a\xc3\"", `"\u0041\u2028"`} {
		var want string
		if err := json.Unmarshal([]byte(q), &want); err != nil {
			t.Fatal(err)
		}
		if got := Text([]byte(q)); got != want {
			t.Errorf("Text(%s) = %q, encoding/json %q", q, got, want)
		}
		s := []byte(q[1 : len(q)-1])
		if Plain(s) != (string(s) == want) {
			t.Errorf("Plain(%s) = %v", q, Plain(s))
		}
	}
}

func TestUint(t *testing.T) {
	for _, tt := range []struct {
		in string
		u  uint64
		ok bool
	}{{"0", 0, true}, {"42", 42, true}, {"18446744073709551615", 1<<64 - 1, true},
		{"18446744073709551616", 0, false}, {"-1", 0, false}, {"1.0", 0, false}, {"1e2", 0, false}, {"", 0, false}} {
		if u, ok := Uint([]byte(tt.in)); u != tt.u || ok != tt.ok {
			t.Errorf("Uint(%q) = %d %v", tt.in, u, ok)
		}
	}
}
