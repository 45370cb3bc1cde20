package codec

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/gobwas/ws"
)

// Subprotocols of PROTOCOL.md.
const (
	SubprotocolJSON    = "tickfan.v1.json"
	SubprotocolMsgpack = "tickfan.v1.msgpack"
)

// MaxHandshakeSize is the most bytes an opening handshake request may take.
const MaxHandshakeSize = 8192

// HandshakeResult is what Handshake made of the bytes received so far.
type HandshakeResult struct {
	// N is the size of the request; 0 while it is incomplete. Bytes after
	// it (the first frames) are not part of the handshake.
	N int
	// Response is the bytes to send: the 101 on success, an HTTP error
	// with Connection: close otherwise.
	Response []byte
	// Format is the negotiated frame format on success.
	Format Format
	// Err is set when the connection must be refused (and closed once
	// Response is sent).
	Err error
}

// Handshake looks for a complete HTTP request (up to "\r\n\r\n") at the
// front of buf and answers it. While the request is incomplete it returns
// N == 0 and a nil Err, unless the bytes so far cannot start a request or
// pass MaxHandshakeSize. A GET of exactly path (any query) with valid
// WebSocket upgrade headers gets the 101 response and the format of the
// first supported subprotocol the client offered (WSJSON and no
// Sec-WebSocket-Protocol header when it offered none). Another path gets
// 404, anything else malformed 400 (or the more precise status gobwas/ws
// picks: 405 for another method, 426 for another WebSocket version, 505 for
// another HTTP version), each with Connection: close and Err set.
func Handshake(buf []byte, path string) HandshakeResult {
	return HandshakeWith(buf, HandshakeOptions{Path: path})
}

// HandshakeOptions are the checks of HandshakeWith.
type HandshakeOptions struct {
	// Path is the WebSocket path; other paths get 404.
	Path string
	// AllowOrigin, when set, is asked about the request's Origin header; a
	// request whose Origin it refuses gets 403. A request without Origin (a
	// non-browser client) is not asked about.
	AllowOrigin func(origin []byte) bool
}

// HandshakeWith is Handshake with more checks.
func HandshakeWith(buf []byte, opts HandshakeOptions) HandshakeResult {
	path := opts.Path
	end := bytes.Index(buf, []byte("\r\n\r\n"))
	if end < 0 {
		switch {
		case len(buf) > MaxHandshakeSize:
			return handshakeError(len(buf), http.StatusRequestHeaderFieldsTooLarge, nil, "request headers over 8192 bytes")
		case !plausibleRequestStart(buf):
			return handshakeError(len(buf), http.StatusBadRequest, nil, "not an HTTP request")
		}
		return HandshakeResult{}
	}
	n := end + 4
	if n > MaxHandshakeSize {
		return handshakeError(n, http.StatusRequestHeaderFieldsTooLarge, nil, "request headers over 8192 bytes")
	}

	var out bytes.Buffer
	u := ws.Upgrader{
		OnRequest: func(uri []byte) error {
			if q := bytes.IndexByte(uri, '?'); q >= 0 {
				uri = uri[:q]
			}
			if string(uri) != path {
				return errNotFound
			}
			return nil
		},
		Protocol: func(p []byte) bool {
			return string(p) == SubprotocolJSON || string(p) == SubprotocolMsgpack
		},
	}
	if opts.AllowOrigin != nil {
		u.OnHeader = func(key, value []byte) error {
			if bytes.EqualFold(key, []byte("Origin")) && !opts.AllowOrigin(value) {
				return errForbiddenOrigin
			}
			return nil
		}
	}
	// The reader ends at n: the Upgrader's buffered reader must not take
	// the frames that may follow the request.
	hs, err := u.Upgrade(struct {
		io.Reader
		io.Writer
	}{bytes.NewReader(buf[:n]), &out})
	if err != nil {
		code := http.StatusBadRequest
		var extra []byte
		var rej *ws.ConnectionRejectedError
		if errors.As(err, &rej) && rej.StatusCode() != 0 {
			code = rej.StatusCode()
		}
		if code == http.StatusUpgradeRequired {
			extra = []byte("Sec-WebSocket-Version: 13\r\n")
		}
		return handshakeError(n, code, extra, err.Error())
	}
	f := WSJSON
	if hs.Protocol == SubprotocolMsgpack {
		f = WSMsgpack
	}
	return HandshakeResult{N: n, Response: out.Bytes(), Format: f}
}

var errForbiddenOrigin = ws.RejectConnectionError(ws.RejectionStatus(http.StatusForbidden), ws.RejectionReason("origin not allowed"))

var errNotFound = ws.RejectConnectionError(ws.RejectionStatus(http.StatusNotFound), ws.RejectionReason("not found"))

// plausibleRequestStart reports whether buf can be the start of an HTTP
// request line: a method of token characters, then a space. It lets
// Handshake refuse a TLS hello or other garbage at once instead of waiting
// for 8 KiB or the handshake timeout.
func plausibleRequestStart(buf []byte) bool {
	for i, c := range buf {
		if c == ' ' {
			return i > 0
		}
		if !isTokenChar(c) || i >= 20 {
			return false
		}
	}
	return true
}

func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// handshakeError builds a refusal: a plain-text HTTP response that closes
// the connection.
func handshakeError(n, code int, extraHeaders []byte, reason string) HandshakeResult {
	body := reason + "\n"
	var b []byte
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(code)...)
	b = append(b, "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\nConnection: close\r\n"...)
	b = append(b, extraHeaders...)
	b = append(b, "\r\n"...)
	b = append(b, body...)
	return HandshakeResult{N: n, Response: b, Err: &HandshakeError{Status: code, Reason: reason}}
}

// HandshakeError is a refused opening handshake and the HTTP status sent.
type HandshakeError struct {
	Status int
	Reason string
}

func (e *HandshakeError) Error() string {
	return "websocket handshake: " + strconv.Itoa(e.Status) + " " + e.Reason
}
