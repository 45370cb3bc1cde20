package codec

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/tickfan/tickfan/topic"
)

func TestFrame(t *testing.T) {
	bookJSON := `{"b":[[65000.5,1.25],[64999.5,0.5]],"a":[[65001.5,2]],"id":9007199254740993,"neg":-12,"u":"\u00e9\ud83d\ude00\n"}`
	bookWant := obj{"b": []any{[]any{65000.5, 1.25}, []any{64999.5, 0.5}}, "a": []any{[]any{65001.5, uint64(2)}},
		"id": uint64(9007199254740993), "neg": int64(-12), "u": "é😀\n"}
	tests := []struct {
		name string
		pub  *topic.Publication // a template: each format encodes a fresh copy
		want obj
	}{
		{"json update", &topic.Publication{Topic: "book.BTC-USD", Seq: 42, Data: []byte(bookJSON)},
			obj{"t": "book.BTC-USD", "s": uint64(42), "d": bookWant}},
		{"json snapshot", &topic.Publication{Topic: "book.BTC-USD", Seq: 1, Snap: true, Data: []byte(bookJSON)},
			obj{"t": "book.BTC-USD", "s": uint64(1), "d": bookWant, "k": "snap"}},
		{"msgpack update", &topic.Publication{Topic: "t:x@y", Seq: math.MaxUint64, DataMsgpack: true,
			Data: marshal(t, WSMsgpack, kv{"p", 1.5, "q", []any{1, -1, "x"}, "bin", []byte{0, 1, 2}})},
			obj{"t": "t:x@y", "s": uint64(math.MaxUint64), "d": obj{"p": 1.5, "q": []any{uint64(1), int64(-1), "x"}, "bin": "AAEC"}}},
		{"msgpack bin", &topic.Publication{Topic: "a", Seq: 2, DataMsgpack: true, Data: marshal(t, WSMsgpack, []byte("hi"))},
			obj{"t": "a", "s": uint64(2), "d": "aGk="}},
		{"scalar", &topic.Publication{Topic: "a", Seq: 200, Data: []byte(`3`)},
			obj{"t": "a", "s": uint64(200), "d": uint64(3)}},
		{"large", &topic.Publication{Topic: "big", Seq: 70000, Data: []byte(`"` + strings.Repeat("x", 70000) + `"`)},
			obj{"t": "big", "s": uint64(70000), "d": strings.Repeat("x", 70000)}},
		{"medium", &topic.Publication{Topic: "mid", Seq: 3, Data: []byte(`"` + strings.Repeat("y", 200) + `"`)},
			obj{"t": "mid", "s": uint64(3), "d": strings.Repeat("y", 200)}},
		{"empty data is null", &topic.Publication{Topic: "a", Seq: 1}, obj{"t": "a", "s": uint64(1), "d": nil}},
		{"broken json data becomes null for msgpack", &topic.Publication{Topic: "a", Seq: 1, Data: []byte(`{`)}, nil},
	}
	for _, f := range allFormats {
		for _, tt := range tests {
			t.Run(f.String()+"/"+tt.name, func(t *testing.T) {
				p := topic.Publication{Topic: tt.pub.Topic, Seq: tt.pub.Seq, Snap: tt.pub.Snap, Data: tt.pub.Data, DataMsgpack: tt.pub.DataMsgpack}
				if tt.want == nil {
					if !f.Msgpack() {
						t.Skip("JSON data is written as is")
					}
					tt.want = obj{"t": "a", "s": uint64(1), "d": nil}
				}
				frame := Frame(&p, f)
				body := splitFrame(t, frame, f)
				if !bytes.Equal(Body(frame, f), body) {
					t.Fatal("Body disagrees with the frame header")
				}
				mustEqual(t, decodeBody(t, body, f), tt.want)
				if len(p.Data) > 0 && p.DataMsgpack == f.Msgpack() && !bytes.Contains(body, p.Data) {
					t.Fatal("payload in its own format was not written as is")
				}
				if f == WSJSON && !bytes.HasPrefix(body, []byte(`{"t":`)) {
					t.Fatalf("body %s", body)
				}
				// Cached: the same bytes, without allocating.
				again := Frame(&p, f)
				if &again[0] != &frame[0] || len(again) != len(frame) {
					t.Fatal("second Frame call did not return the cached frame")
				}
				if allocs := testing.AllocsPerRun(100, func() { Frame(&p, f) }); allocs != 0 {
					t.Fatalf("cached Frame allocates %v times", allocs)
				}
				if cap(frame)-len(frame) > 0 && tt.pub.DataMsgpack == f.Msgpack() {
					t.Errorf("frame has %d bytes of spare capacity", cap(frame)-len(frame))
				}
			})
		}
	}
}

func TestFrameFormatsAreSeparate(t *testing.T) {
	p := &topic.Publication{Topic: "a", Seq: 1, Data: []byte(`[1]`)}
	j, w, c := Frame(p, WSJSON), Frame(p, WSMsgpack), Frame(p, TCPMsgpack)
	if bytes.Equal(j, w) || bytes.Equal(w, c) {
		t.Fatal("formats share a frame")
	}
	if !bytes.Equal(Body(w, WSMsgpack), Body(c, TCPMsgpack)) {
		t.Fatal("WebSocket and TCP msgpack bodies differ")
	}
}

func TestFrameConcurrent(t *testing.T) {
	p := &topic.Publication{Topic: "a", Seq: 1, Data: []byte(`{"x":[1,2,3]}`)}
	const n = 16
	frames := make([][]byte, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { frames[i] = Frame(p, Format(i%3)) })
	}
	wg.Wait()
	for i := range n {
		if &frames[i][0] != &frames[i%3][0] {
			t.Fatalf("goroutine %d got its own encoding", i)
		}
	}
}

func TestJSONToMsgpack(t *testing.T) {
	tests := []struct {
		js   string
		want any // as vmihailenco decodes it, before norm
	}{
		{`0`, int8(0)},
		{`123`, int8(123)}, // positive fixint
		{`-5`, int8(-5)},
		{`-129`, int16(-129)},
		{`300`, uint16(300)},
		{`9223372036854775807`, uint64(math.MaxInt64)},
		{`-9223372036854775808`, int64(math.MinInt64)},
		{`18446744073709551615`, uint64(math.MaxUint64)},
		{`18446744073709551616`, float64(18446744073709551616)},
		{`1.5`, 1.5},
		{`1.0`, 1.0},
		{`1e3`, 1000.0},
		{`-0`, int8(0)},
		{`-2.5E-3`, -0.0025},
		{`true`, true},
		{`false`, false},
		{`null`, nil},
		{`""`, ""},
		{`"a\"b\\c\/\b\f\n\r\t\u0001é\u00e9\ud83d\ude00"`, "a\"b\\c/\b\f\n\r\t\x01éé😀"},
		{`"\udc00"`, "\uFFFD"},
		{` [ ] `, []any{}},
		{`{}`, map[string]any{}},
		{`[1,"x",[true,null],{"k":2.5}]`, []any{int8(1), "x", []any{true, nil}, map[string]any{"k": 2.5}}},
		{`{"\u006b":1,"nested":{"a":{"b":[1]}}}`, map[string]any{"k": int8(1), "nested": map[string]any{"a": map[string]any{"b": []any{int8(1)}}}}},
	}
	for _, tt := range tests {
		mp, err := JSONToMsgpack([]byte("prefix"), []byte(tt.js))
		if err != nil {
			t.Fatalf("JSONToMsgpack(%s): %v", tt.js, err)
		}
		if !bytes.HasPrefix(mp, []byte("prefix")) {
			t.Fatal("dst lost")
		}
		mp = mp[len("prefix"):]
		if !ValidMsgpack(mp) {
			t.Fatalf("JSONToMsgpack(%s) = %x is not valid msgpack", tt.js, mp)
		}
		var got any
		if err := msgpack.Unmarshal(mp, &got); err != nil {
			t.Fatalf("msgpack.Unmarshal(%x): %v", mp, err)
		}
		mustEqual(t, got, tt.want)
	}
	bads := []string{``, ` `, `{`, `}`, `[1,]`, `[,1]`, `1 2`, `1e400`, `[-1e309]`, `nul`, `nulll`, `tru`, `falsy`,
		`01`, `-`, `-a`, `1.`, `.5`, `1e`, `1e+`, `+1`, `0x1`, `"\x"`, `"\u12"`, `"\u12g4"`, "\"ctl\x01\"", `"open`,
		`[1 2]`, `{"a" 1}`, `{"a":1,}`, `{,}`, `{1:2}`, `{"a":1 "b":2}`, `["a"]]`, `[`, `[[]`, `{"a":}`, `NaN`, `Infinity`,
		strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1)}
	for _, bad := range bads {
		if json.Valid([]byte(bad)) && bad != `1e400` && bad != `[-1e309]` {
			t.Fatalf("test case %q is valid JSON", bad)
		}
		if _, err := JSONToMsgpack(nil, []byte(bad)); err == nil {
			t.Errorf("JSONToMsgpack(%q) succeeded", bad)
		}
	}
	deep := strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth)
	if _, err := JSONToMsgpack(nil, []byte(deep)); err != nil || !json.Valid([]byte(deep)) {
		t.Errorf("nesting at the limit: %v", err)
	}
}

func TestJSONToMsgpackFloats(t *testing.T) {
	for _, num := range []string{
		"0.1", "0.30000000000000004", "4.35", "-0.0", "1.7976931348623157e308", "5e-324", "2.2250738585072014e-308",
		"123456789012345678e-5", "9007199254740993.0", "9007199254740992.5", "1e22", "1e23", "1.5e-22", "1e-23",
		"12345678901234567890.5", "0.000000000000000000000000000001", "1E+2", "3e0", "-2.5e-3", "1e-400",
		"100000000000000000000000000000000000000000000000000000000000000001e-50",
	} {
		mp, err := JSONToMsgpack(nil, []byte(num))
		if err != nil {
			t.Fatalf("%s: %v", num, err)
		}
		var got float64
		if err := msgpack.Unmarshal(mp, &got); err != nil || mp[0] != 0xcb {
			t.Fatalf("%s: %x %v", num, mp, err)
		}
		want, _ := strconv.ParseFloat(num, 64)
		if math.Float64bits(got) != math.Float64bits(want) {
			t.Errorf("%s: got %v (%x), want %v", num, got, math.Float64bits(got), want)
		}
	}
}

func TestJSONToMsgpackLarge(t *testing.T) {
	// Containers of over 15 and over 65535 entries need the wider headers.
	for _, n := range []int{15, 16, 65535, 65536} {
		var arr, m strings.Builder
		arr.WriteByte('[')
		m.WriteByte('{')
		for i := range n {
			if i > 0 {
				arr.WriteByte(',')
				m.WriteByte(',')
			}
			arr.WriteString("[1,2]")
			m.WriteString(`"k` + itoa(i) + `":{"x":[]}`)
		}
		arr.WriteByte(']')
		m.WriteByte('}')
		for i, js := range []string{arr.String(), m.String()} {
			mp, err := JSONToMsgpack(nil, []byte(js))
			if err != nil {
				t.Fatal(err)
			}
			dec := msgpack.NewDecoder(bytes.NewReader(mp))
			var got int
			if i == 0 {
				got, err = dec.DecodeArrayLen()
			} else {
				got, err = dec.DecodeMapLen()
			}
			if err != nil || got != n {
				t.Fatalf("n=%d: header says %d (%v)", n, got, err)
			}
			// The input is compact and unescaped, so it comes back byte for byte.
			back, err := MsgpackToJSON(nil, mp)
			if err != nil || string(back) != js {
				t.Fatalf("n=%d: round trip differs (%v)", n, err)
			}
			if n == 16 {
				want, _ := decodeValue([]byte(js), false)
				v, err := decodeValue(mp, true)
				if err != nil {
					t.Fatal(err)
				}
				mustEqual(t, v, want)
			}
		}
	}
}

func itoa(i int) string { return string(appendIntText(nil, int64(i))) }

func TestMsgpackToJSON(t *testing.T) {
	mp := func(v any) []byte { return marshal(t, WSMsgpack, v) }
	tests := []struct {
		mp   []byte
		want string
	}{
		{mp(nil), `null`},
		{mp(true), `true`},
		{mp(int8(-3)), `-3`},
		{mp(int64(math.MinInt64)), `-9223372036854775808`},
		{mp(uint64(math.MaxUint64)), `18446744073709551615`},
		{mp(1.5), `1.5`},
		{mp(1.0), `1`},
		{mp(1e21), `1e+21`},
		{mp(1e-7), `1e-7`},
		{mp(float32(0.1)), `0.1`},
		{mp(math.NaN()), `null`},
		{mp(math.Inf(1)), `null`},
		{mp([]any{math.Inf(-1), 1}), `[null,1]`},
		{mp("q\"\\\n\x01é\u2028"), `"q\"\\\n\u0001é\u2028"`},
		{[]byte{0xa2, 0xff, 'a'}, `"\ufffda"`},
		{mp([]byte{0xfb, 0xff}), `"+/8="`},
		{mp(map[int]string{7: "x"}), `{"7":"x"}`},
		{mp(kv{true, 1, nil, 2, 1.5, 3, []byte("b"), 4}), `{"true":1,"null":2,"1.5":3,"Yg==":4}`},
		{mp(kv{"a", kv{"b", []any{}}}), `{"a":{"b":[]}}`},
		{[]byte{0xdc, 0, 1, 0x01}, `[1]`},
		{[]byte{0xdd, 0, 0, 0, 1, 0x01}, `[1]`},
		{[]byte{0xde, 0, 1, 0xa1, 'k', 0x01}, `{"k":1}`},
		{[]byte{0xdf, 0, 0, 0, 1, 0xd9, 1, 'k', 0xcd, 1, 0}, `{"k":256}`},
		{[]byte{0xc5, 0, 1, 0xff}, `"/w=="`},
		{[]byte{0xd0, 0x80}, `-128`},
		{[]byte{0xd1, 0xff, 0x7f}, `-129`},
		{[]byte{0xd2, 0xff, 0xff, 0xff, 0x7f}, `-129`},
		{[]byte{0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, `-1`},
		{[]byte{0xcc, 0xff}, `255`},
		{[]byte{0xce, 0, 1, 0, 0}, `65536`},
	}
	for _, tt := range tests {
		got, err := MsgpackToJSON([]byte("x"), tt.mp)
		if err != nil {
			t.Fatalf("MsgpackToJSON(%x): %v", tt.mp, err)
		}
		if string(got[1:]) != tt.want {
			t.Errorf("MsgpackToJSON(%x) = %s, want %s", tt.mp, got[1:], tt.want)
		}
		if !json.Valid(got[1:]) {
			t.Errorf("invalid JSON %s", got[1:])
		}
	}
	deep := bytes.Repeat([]byte{0x91}, maxDepth+1)
	deep = append(deep, 0x01)
	for _, bad := range [][]byte{
		nil, {0xc1}, {0x92, 0x01}, {0x01, 0x02}, {0xd4, 0x01, 0x00}, {0xc7, 0x01, 0x05, 0x00},
		// maps and arrays as map keys: converting nested ones as quoted
		// JSON text would grow exponentially with the depth
		mp(kv{[]any{1}, 5}), mp(kv{kv{"a", 1}, 5}), {0x81, 0xdc, 0, 1, 0x01, 0x01}, {0x81, 0xde, 0, 0, 0x01},
		{0xd9}, {0xd9, 0x05, 'a'}, {0xdd, 0xff, 0xff, 0xff, 0xff}, {0xcb, 0, 0}, deep,
	} {
		if _, err := MsgpackToJSON(nil, bad); err == nil || ValidMsgpack(bad) {
			t.Errorf("MsgpackToJSON(%x) succeeded", bad)
		}
	}
	ok := append(bytes.Repeat([]byte{0x91}, maxDepth-1), 0x01)
	if !ValidMsgpack(ok) {
		t.Error("nesting at the limit refused")
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	for _, js := range []string{
		`{"b":[[65000.5,1.25]],"seq":18446744073709551615,"neg":-9223372036854775808,"f":-0.0001,"e":1e-300}`,
		`["é😀\u2028", "\u0000", "\"\\/"]`,
		`{"a":{"b":{"c":{"d":[null,true,false,{},[]]}}}}`,
		`123456789012345678901234567890`,
		`3.141592653589793`,
	} {
		mp, err := JSONToMsgpack(nil, []byte(js))
		if err != nil {
			t.Fatal(err)
		}
		back, err := MsgpackToJSON(nil, mp)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := decodeValue([]byte(js), false)
		got, err := decodeValue(back, false)
		if err != nil {
			t.Fatalf("%s -> %s: %v", js, back, err)
		}
		mustEqual(t, got, want)
		// And the msgpack the reference decoder sees is the same value.
		got, err = decodeValue(mp, true)
		if err != nil {
			t.Fatal(err)
		}
		mustEqual(t, got, want)
	}
}

func TestValidJSON(t *testing.T) {
	for _, tt := range []struct {
		s  string
		ok bool
	}{
		{`1`, true}, {` {"a":[1,2]} `, true}, {`"x"`, true}, {`null`, true}, {`1e308`, true}, {`1e-400`, true},
		{``, false}, {`1 2`, false}, {`{`, false}, {`1e309`, false}, {`{"a":"1e999","b":-1E+999}`, false}, {`"1e999"`, true},
		{strings.Repeat("9", 400), false}, {strings.Repeat("9", 300), true}, {"\"\xff\"", false}, {`"\udc00"`, true},
	} {
		if got := ValidJSON([]byte(tt.s)); got != tt.ok {
			t.Errorf("ValidJSON(%.40q) = %v", tt.s, got)
		}
	}
}

func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{
		"", "plain", `"quoted"`, `back\slash`, "ctl\x00\x01\x1f\x7f", "\b\f\n\r\t", "é😀", "\u2028\u2029",
		"bad\xffutf8\xc3", "\xed\xa0\x80", "<html>&amp;", strings.Repeat("ü", 100),
	} {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		want := strings.TrimSuffix(buf.String(), "\n")
		if got := string(appendJSONString(nil, s)); got != want {
			t.Errorf("appendJSONString(%q) = %s, want %s", s, got, want)
		}
	}
}

func TestAppendJSONFloatMatchesEncodingJSON(t *testing.T) {
	for _, f := range []float64{0, 1, -1, 0.1, 1.5, 1e20, 1e21, 1e-6, 1e-7, 123456789.125, math.MaxFloat64, math.SmallestNonzeroFloat64, -2.5e-10} {
		want, _ := json.Marshal(f)
		if got := appendJSONFloat(nil, f, 64); string(got) != string(want) {
			t.Errorf("float64 %v: %s, want %s", f, got, want)
		}
		f32 := float32(f)
		if math.IsInf(float64(f32), 0) {
			continue
		}
		want, _ = json.Marshal(f32)
		if got := appendJSONFloat(nil, float64(f32), 32); string(got) != string(want) {
			t.Errorf("float32 %v: %s, want %s", f32, got, want)
		}
	}
}

func TestBase64MatchesEncodingJSON(t *testing.T) {
	b := []byte{0, 1, 2, 250, 251, 252, 253}
	want, _ := json.Marshal(b)
	got, err := MsgpackToJSON(nil, marshal(t, WSMsgpack, b))
	if err != nil || string(got) != string(want) {
		t.Fatalf("got %s %v, want %s", got, err, want)
	}
	if string(want) != `"`+base64.StdEncoding.EncodeToString(b)+`"` {
		t.Fatal("encoding/json changed its []byte form")
	}
}
