// Package auth verifies the JWTs clients present (HS256, RS256 or ES256,
// one key per server) and holds the topic permission rules of PROTOCOL.md:
// who may read a private topic, who may publish where. It knows nothing of
// connections or sockets; a Verifier is immutable and safe from any
// goroutine.
package auth
