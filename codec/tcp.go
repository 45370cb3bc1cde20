package codec

import (
	"encoding/binary"
	"strconv"
)

// ReadTCPFrame parses one TCP frame from the front of buf: a 4-byte
// big-endian length N, then N bytes of body. It returns the body (aliasing
// buf) and the frame size n; n == 0 with a nil error means buf does not hold
// the whole frame yet. A length of 0 or over maxFrame is an *Error (400 or
// 413), known from the prefix alone; the server then closes the connection.
// A maxFrame of 0 or less means no limit.
func ReadTCPFrame(buf []byte, maxFrame int) (body []byte, n int, err error) {
	if len(buf) < tcpHeader {
		return nil, 0, nil
	}
	size := uint64(binary.BigEndian.Uint32(buf))
	if size == 0 {
		return nil, 0, &Error{Code: CodeBadRequest, Msg: "frame of length 0"}
	}
	if maxFrame > 0 && size > uint64(maxFrame) {
		return nil, 0, &Error{Code: CodeTooLarge, Msg: "frame of " + strconv.FormatUint(size, 10) + " bytes, at most " + strconv.Itoa(maxFrame)}
	}
	total := tcpHeader + int(size)
	if len(buf) < total {
		return nil, 0, nil
	}
	return buf[tcpHeader:total], total, nil
}
