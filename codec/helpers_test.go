package codec

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"testing"

	"github.com/gobwas/ws"
	"github.com/vmihailenco/msgpack/v5"
)

// The helpers here read and build wire bytes with encoding/json,
// vmihailenco/msgpack and gobwas/ws, never with the code under test.

var allFormats = []Format{WSJSON, WSMsgpack, TCPMsgpack}

// splitFrame checks that frame is one complete server frame of format f and
// returns its body.
func splitFrame(t testing.TB, frame []byte, f Format) []byte {
	t.Helper()
	if f == TCPMsgpack {
		if len(frame) < 4 {
			t.Fatalf("tcp frame of %d bytes", len(frame))
		}
		n := binary.BigEndian.Uint32(frame)
		if int(n) != len(frame)-4 {
			t.Fatalf("tcp length prefix %d, body %d bytes", n, len(frame)-4)
		}
		return frame[4:]
	}
	r := bytes.NewReader(frame)
	h, err := ws.ReadHeader(r)
	if err != nil {
		t.Fatalf("ws.ReadHeader: %v", err)
	}
	wantOp := ws.OpText
	if f == WSMsgpack {
		wantOp = ws.OpBinary
	}
	if !h.Fin || h.Masked || h.Rsv != 0 || h.OpCode != wantOp {
		t.Fatalf("header %+v, want FIN, unmasked, op %v", h, wantOp)
	}
	body := frame[len(frame)-r.Len():]
	if int64(len(body)) != h.Length {
		t.Fatalf("header length %d, body %d bytes", h.Length, len(body))
	}
	return body
}

// decodeBody decodes one whole JSON or msgpack value into normalized Go
// values (see norm).
func decodeBody(t testing.TB, body []byte, f Format) any {
	t.Helper()
	v, err := decodeValue(body, f.Msgpack())
	if err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
	return v
}

func decodeValue(body []byte, mp bool) (any, error) {
	if mp {
		r := bytes.NewReader(body)
		dec := msgpack.NewDecoder(r)
		v, err := dec.DecodeInterface()
		if err != nil {
			return nil, err
		}
		if r.Len() != 0 {
			return nil, errTrailing
		}
		return norm(v), nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errTrailing
	}
	return norm(v), nil
}

var errTrailing = &Error{Code: 0, Msg: "trailing data"}

// norm maps decoded values to one form so JSON and msgpack compare equal:
// integers become uint64 (or int64 when negative), other numbers float64,
// maps map[string]any.
func norm(v any) any {
	switch x := v.(type) {
	case json.Number:
		return canonNumber(x.String())
	case int8:
		return normInt(int64(x))
	case int16:
		return normInt(int64(x))
	case int32:
		return normInt(int64(x))
	case int64:
		return normInt(x)
	case int:
		return normInt(int64(x))
	case uint8:
		return uint64(x)
	case uint16:
		return uint64(x)
	case uint32:
		return uint64(x)
	case uint64:
		return x
	case uint:
		return uint64(x)
	case float32:
		return float64(x)
	case float64:
		return x
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = norm(e)
		}
		return m
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[keyString(k)] = norm(e)
		}
		return m
	case []byte: // msgpack bin; JSON carries it as base64
		return base64.StdEncoding.EncodeToString(x)
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = norm(e)
		}
		return s
	}
	return v
}

func keyString(k any) string {
	if s, ok := k.(string); ok {
		return s
	}
	b, _ := json.Marshal(norm(k))
	return string(b)
}

func normInt(v int64) any {
	if v >= 0 {
		return uint64(v)
	}
	return v
}

// canonNumber reads a JSON number: an integer literal that fits stays an
// exact integer, anything else is a float64.
func canonNumber(s string) any {
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		return normInt(v)
	}
	if v, err := strconv.ParseUint(s, 10, 64); err == nil {
		return v
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !math.IsInf(f, 0) {
		return s
	}
	return f
}

// semEqual compares normalized values. Two integers must be equal exactly;
// a number that is a float on either side compares as float64, since JSON
// writes an integral float64 as an integer literal (1.0 becomes 1).
func semEqual(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !semEqual(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !semEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	case uint64, int64, float64:
		switch b.(type) {
		case uint64, int64, float64:
		default:
			return false
		}
		_, af := a.(float64)
		_, bf := b.(float64)
		if !af && !bf {
			return a == b
		}
		return toFloat(a) == toFloat(b)
	}
	return reflect.DeepEqual(a, b)
}

func toFloat(v any) float64 {
	switch x := v.(type) {
	case uint64:
		return float64(x)
	case int64:
		return float64(x)
	}
	return v.(float64)
}

func mustEqual(t testing.TB, got, want any) {
	t.Helper()
	if !semEqual(got, want) {
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(want)
		t.Fatalf("got  %s\nwant %s\n(%#v)", gj, wj, got)
	}
}

// marshal encodes v with the reference encoder of format f.
func marshal(t testing.TB, f Format, v any) []byte {
	t.Helper()
	var b []byte
	var err error
	if f.Msgpack() {
		b, err = msgpack.Marshal(v)
	} else {
		b, err = json.Marshal(v)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// kv is a map whose key order is kept when encoded.
type kv []any // key, value, key, value...

func (m kv) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i := 0; i < len(m); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(m[i])
		if err != nil {
			return nil, err
		}
		v, ok := m[i+1].(rawJSON)
		if !ok {
			var err error
			if v, err = json.Marshal(m[i+1]); err != nil {
				return nil, err
			}
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func (m kv) EncodeMsgpack(enc *msgpack.Encoder) error {
	if err := enc.EncodeMapLen(len(m) / 2); err != nil {
		return err
	}
	for _, x := range m {
		if err := enc.Encode(x); err != nil {
			return err
		}
	}
	return nil
}

// rawJSON is JSON text that kv.MarshalJSON embeds byte for byte (when
// called directly: json.Marshal would compact and HTML-escape it).
type rawJSON []byte

// rawMsgpack is msgpack bytes embedded as they are.
type rawMsgpack []byte

func (r rawMsgpack) EncodeMsgpack(enc *msgpack.Encoder) error {
	_, err := enc.Writer().Write(r)
	return err
}

// clientFrame builds a masked client frame as a browser would.
func clientFrame(t testing.TB, fin bool, op ws.OpCode, payload []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	mask := [4]byte{0x1f, 0x8b, 0x33, 0xc4}
	h := ws.Header{Fin: fin, OpCode: op, Masked: true, Mask: mask, Length: int64(len(payload))}
	if err := ws.WriteHeader(&buf, h); err != nil {
		t.Fatal(err)
	}
	p := append([]byte(nil), payload...)
	ws.Cipher(p, mask, 0)
	buf.Write(p)
	return buf.Bytes()
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	return b
}
