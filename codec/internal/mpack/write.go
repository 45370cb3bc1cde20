package mpack

import (
	"encoding/binary"
	"math"
)

// Type bytes used by name.
const (
	Nil   = 0xc0
	False = 0xc2
	True  = 0xc3
)

// AppendMapHeader appends the header of a map of n entries.
func AppendMapHeader(dst []byte, n int) []byte { return appendHeader(dst, n, 0x80, 0xde, 0xdf) }

// AppendArrayHeader appends the header of an array of n elements.
func AppendArrayHeader(dst []byte, n int) []byte { return appendHeader(dst, n, 0x90, 0xdc, 0xdd) }

// appendHeader appends a map or array header: fix carries a count up to
// 15 in its low bits, w16 and w32 are followed by the count in 2 or 4
// bytes.
func appendHeader(dst []byte, n int, fix, w16, w32 byte) []byte {
	switch {
	case n <= 15:
		return append(dst, fix|byte(n))
	case n <= math.MaxUint16:
		return append(dst, w16, byte(n>>8), byte(n))
	}
	return binary.BigEndian.AppendUint32(append(dst, w32), uint32(n))
}

// PatchHeader writes the header of a map (isMap) or array of n entries at
// dst[pos], where one byte was reserved for it, moving what follows when
// the header needs more room. It serves writers that learn the count only
// after the entries.
func PatchHeader(dst []byte, pos, n int, isMap bool) []byte {
	if n <= 15 {
		if isMap {
			dst[pos] = 0x80 | byte(n)
		} else {
			dst[pos] = 0x90 | byte(n)
		}
		return dst
	}
	var hdr [5]byte
	var h []byte
	if isMap {
		h = AppendMapHeader(hdr[:0], n)
	} else {
		h = AppendArrayHeader(hdr[:0], n)
	}
	extra := len(h) - 1
	end := len(dst)
	dst = append(dst, hdr[:extra]...)
	copy(dst[pos+len(h):], dst[pos+1:end])
	copy(dst[pos:], h)
	return dst
}

func appendStrHeader(dst []byte, n int) []byte {
	switch {
	case n <= 31:
		return append(dst, 0xa0|byte(n))
	case n <= math.MaxUint8:
		return append(dst, 0xd9, byte(n))
	case n <= math.MaxUint16:
		return append(dst, 0xda, byte(n>>8), byte(n))
	}
	return binary.BigEndian.AppendUint32(append(dst, 0xdb), uint32(n))
}

// AppendStr appends s as a str.
func AppendStr(dst []byte, s string) []byte {
	return append(appendStrHeader(dst, len(s)), s...)
}

// AppendStrBytes appends s as a str.
func AppendStrBytes(dst, s []byte) []byte {
	return append(appendStrHeader(dst, len(s)), s...)
}

// StrLen is the encoded size of a str of n bytes.
func StrLen(n int) int {
	switch {
	case n <= 31:
		return 1 + n
	case n <= math.MaxUint8:
		return 2 + n
	case n <= math.MaxUint16:
		return 3 + n
	}
	return 5 + n
}

// AppendUint appends v in its shortest form.
func AppendUint(dst []byte, v uint64) []byte {
	switch {
	case v <= 0x7f:
		return append(dst, byte(v))
	case v <= math.MaxUint8:
		return append(dst, 0xcc, byte(v))
	case v <= math.MaxUint16:
		return append(dst, 0xcd, byte(v>>8), byte(v))
	case v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(dst, 0xce), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(dst, 0xcf), v)
}

// UintLen is the encoded size of v.
func UintLen(v uint64) int {
	switch {
	case v <= 0x7f:
		return 1
	case v <= math.MaxUint8:
		return 2
	case v <= math.MaxUint16:
		return 3
	case v <= math.MaxUint32:
		return 5
	}
	return 9
}

// AppendInt appends v in its shortest form; a non-negative v as AppendUint
// writes it.
func AppendInt(dst []byte, v int64) []byte {
	if v >= 0 {
		return AppendUint(dst, uint64(v))
	}
	switch {
	case v >= -32:
		return append(dst, byte(v))
	case v >= math.MinInt8:
		return append(dst, 0xd0, byte(v))
	case v >= math.MinInt16:
		return append(dst, 0xd1, byte(v>>8), byte(v))
	case v >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(dst, 0xd2), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(dst, 0xd3), uint64(v))
}

// AppendBool appends v.
func AppendBool(dst []byte, v bool) []byte {
	if v {
		return append(dst, True)
	}
	return append(dst, False)
}

// AppendFloat64 appends f as a float 64.
func AppendFloat64(dst []byte, f float64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, 0xcb), math.Float64bits(f))
}
