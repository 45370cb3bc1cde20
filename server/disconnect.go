package server

// Close codes the server sends in {"op":"close"} and, over WebSocket, in the
// close frame (PROTOCOL.md "Server to client"). A client may reconnect after
// any of them except CloseForbidden and CloseBadRequest, which will recur
// until the client changes what it sends; after CloseSlowClient it should
// read faster or subscribe to less.
const (
	CloseShutdown       = 4000 // normal shutdown; reconnect
	CloseIdle           = 4001 // nothing heard within the idle timeout; reconnect
	CloseTokenExpired   = 4002 // token expired without refresh; reconnect with a new token
	CloseForbidden      = 4003 // not allowed; do not retry as is
	CloseBadRequest     = 4004 // broken framing or abuse; do not retry as is
	CloseSlowClient     = 4005 // over the outbox mark past the slow timeout; reconnect with since
	CloseTooManyConns   = 4006 // connection limit reached; reconnect later with backoff
	CloseServerDraining = 4007 // the server is draining; reconnect (to another node)
)
