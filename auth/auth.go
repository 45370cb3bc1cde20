package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tickfan/tickfan/topic"
)

// ErrBadToken is returned (wrapped, with a short reason) for a token that is
// refused. The reason never holds the token. PROTOCOL.md answers it with 401.
var ErrBadToken = errors.New("bad token")

// MaxTokenLen is the longest token Verify looks at, in bytes; longer ones are
// refused before any decoding, so a client cannot make the loop chew on
// megabytes of base64.
const MaxTokenLen = 16 << 10

// privPrefix starts the name of every private topic (PROTOCOL.md).
const privPrefix = "priv."

// Config: the zero value means token authentication is off. Set one of
// the two fields, not both.
type Config struct {
	Secret []byte // HS256 key (--jwt-secret); empty: no HS256
	KeyPEM []byte // a PEM public key, RSA (RS256) or ECDSA P-256 (ES256) (--jwt-key file contents); empty: none
}

// Claims are what the server keeps of a verified token.
type Claims struct {
	Sub    string
	Exp    time.Time
	Topics topic.Patterns // extra private topics granted ("topics" claim, list of patterns)
	Pub    topic.Patterns // topics the user may publish to ("pub" claim)
}

// Verifier checks tokens against the one configured key. It is immutable once
// built, so Verify is safe to call from any goroutine.
type Verifier struct {
	alg string // the one algorithm accepted: HS256, RS256 or ES256
	key any    // []byte, *rsa.PublicKey or *ecdsa.PublicKey, matching alg
}

// NewVerifier builds the verifier for cfg. It returns (nil, nil) when cfg is
// the zero value: token authentication is off.
func NewVerifier(cfg Config) (*Verifier, error) {
	switch {
	case len(cfg.Secret) == 0 && len(cfg.KeyPEM) == 0:
		return nil, nil
	case len(cfg.Secret) > 0 && len(cfg.KeyPEM) > 0:
		// One key, one algorithm: nothing to choose from a token's header.
		return nil, errors.New("jwt: set either a secret or a public key, not both")
	case len(cfg.Secret) > 0:
		// A copy, so the caller reusing its slice cannot change our key.
		return &Verifier{alg: jwt.SigningMethodHS256.Alg(), key: append([]byte(nil), cfg.Secret...)}, nil
	}
	key, err := parsePublicKeyPEM(cfg.KeyPEM)
	if err != nil {
		return nil, fmt.Errorf("jwt key: %w", err)
	}
	switch k := key.(type) {
	case *rsa.PublicKey:
		return &Verifier{alg: jwt.SigningMethodRS256.Alg(), key: k}, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("jwt key: ECDSA curve %s is not supported, only P-256 (ES256)", k.Curve.Params().Name)
		}
		return &Verifier{alg: jwt.SigningMethodES256.Alg(), key: k}, nil
	default:
		return nil, fmt.Errorf("jwt key: %T is not supported, only RSA (RS256) or ECDSA P-256 (ES256)", key)
	}
}

// parsePublicKeyPEM reads the first PEM block: a PKIX "PUBLIC KEY" or a
// PKCS #1 "RSA PUBLIC KEY".
func parsePublicKeyPEM(data []byte) (any, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	switch block.Type {
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse PUBLIC KEY: %w", err)
		}
		return k, nil
	case "RSA PUBLIC KEY":
		k, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse RSA PUBLIC KEY: %w", err)
		}
		return k, nil
	default:
		if strings.Contains(block.Type, "PRIVATE") {
			return nil, fmt.Errorf("PEM block is a %s; give the public key", block.Type)
		}
		return nil, fmt.Errorf("PEM block %q is not a public key", block.Type)
	}
}

// Slow reports whether verification is costly enough (RS256/ES256) that the
// server should run it off the event loop. HS256 takes about a microsecond.
func (v *Verifier) Slow() bool {
	return v != nil && v.alg != jwt.SigningMethodHS256.Alg()
}

// wireClaims is the token payload as sent. topics and pub stay raw so that a
// wrong type gets its own error rather than a generic decode failure. The
// time claims shadow RegisteredClaims' own, which take a number written as
// a string; RFC 7519 4.1.4 says NumericDate, a JSON number.
type wireClaims struct {
	jwt.RegisteredClaims
	Exp    *numericDate    `json:"exp,omitempty"`
	Nbf    *numericDate    `json:"nbf,omitempty"`
	Iat    *numericDate    `json:"iat,omitempty"`
	Topics json.RawMessage `json:"topics,omitempty"`
	Pub    json.RawMessage `json:"pub,omitempty"`
}

// numericDate is a JWT NumericDate that must be a JSON number.
type numericDate struct{ jwt.NumericDate }

var errNotNumericDate = errors.New("a time claim must be a number of seconds")

func (d *numericDate) UnmarshalJSON(b []byte) error {
	if len(b) == 0 || (b[0] != '-' && (b[0] < '0' || b[0] > '9')) {
		return errNotNumericDate
	}
	return d.NumericDate.UnmarshalJSON(b)
}

func date(d *numericDate) (*jwt.NumericDate, error) {
	if d == nil {
		return nil, nil
	}
	return &d.NumericDate, nil
}

func (w *wireClaims) GetExpirationTime() (*jwt.NumericDate, error) { return date(w.Exp) }
func (w *wireClaims) GetNotBefore() (*jwt.NumericDate, error)      { return date(w.Nbf) }
func (w *wireClaims) GetIssuedAt() (*jwt.NumericDate, error)       { return date(w.Iat) }

// Verify checks token's signature against the configured key and its claims
// at time now (no leeway: the server's clock decides, clients refresh early).
// It needs sub and exp; nbf, when present, must not be after now. Any refusal
// wraps ErrBadToken. Verify on a nil Verifier (auth off) refuses every token.
func (v *Verifier) Verify(token string, now time.Time) (Claims, error) {
	if v == nil {
		return Claims{}, fmt.Errorf("%w: token authentication is off", ErrBadToken)
	}
	if token == "" {
		return Claims{}, fmt.Errorf("%w: empty", ErrBadToken)
	}
	if len(token) > MaxTokenLen {
		return Claims{}, fmt.Errorf("%w: longer than %d bytes", ErrBadToken, MaxTokenLen)
	}
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{v.alg}),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	var wc wireClaims
	t, err := p.ParseWithClaims(token, &wc, func(t *jwt.Token) (any, error) {
		// WithValidMethods already refused any other alg; checked again here
		// because handing the key to the wrong method is the alg-confusion bug.
		if t.Method == nil || t.Method.Alg() != v.alg {
			return nil, errors.New("unexpected signing method")
		}
		return v.key, nil
	})
	if err != nil {
		return Claims{}, fmt.Errorf("%w: %s", ErrBadToken, v.refusal(t, err))
	}
	if wc.Subject == "" {
		return Claims{}, fmt.Errorf("%w: missing sub", ErrBadToken)
	}
	c := Claims{Sub: wc.Subject, Exp: wc.Exp.Time}
	if c.Topics, err = parsePatternClaim("topics", wc.Topics); err != nil {
		return Claims{}, err
	}
	if c.Pub, err = parsePatternClaim("pub", wc.Pub); err != nil {
		return Claims{}, err
	}
	return c, nil
}

// refusals are the reasons given for jwt's sentinel errors, the first that
// an error wraps winning.
var refusals = []struct {
	err    error
	reason string
}{
	{errNotNumericDate, "exp, nbf and iat must be numbers (RFC 7519 NumericDate)"},
	{jwt.ErrTokenMalformed, "malformed"},
	{jwt.ErrTokenUnverifiable, "unknown or unusable signing algorithm"},
	{jwt.ErrTokenSignatureInvalid, "invalid signature"},
	{jwt.ErrTokenRequiredClaimMissing, "missing exp"},
	{jwt.ErrTokenExpired, "expired"},
	{jwt.ErrTokenNotValidYet, "not valid yet (nbf)"},
}

// refusal turns a jwt error into a short reason. It uses jwt's sentinels, not
// its messages, so nothing decoded from the token leaks into the reason.
func (v *Verifier) refusal(t *jwt.Token, err error) string {
	if t != nil && t.Method != nil && t.Method.Alg() != v.alg {
		// t.Method is only set for an algorithm jwt knows, so this is short.
		return fmt.Sprintf("algorithm %s not accepted, want %s", t.Method.Alg(), v.alg)
	}
	for _, r := range refusals {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return "invalid claims"
}

// parsePatternClaim reads the topics or pub claim: absent, null or a list of
// patterns as topic.ParsePattern takes them.
func parsePatternClaim(name string, raw json.RawMessage) (topic.Patterns, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("%w: %s claim must be a list of strings", ErrBadToken, name)
	}
	ps := make(topic.Patterns, 0, len(list))
	for i, s := range list {
		if len(s) > topic.MaxNameLen {
			// No name is longer, so such a pattern could only match nothing.
			return nil, fmt.Errorf("%w: %s[%d]: pattern longer than %d bytes", ErrBadToken, name, i, topic.MaxNameLen)
		}
		p, err := topic.ParsePattern(s)
		if err != nil {
			return nil, fmt.Errorf("%w: %s[%d]: %v", ErrBadToken, name, i, err)
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// CanRead reports whether c (nil for an anonymous client) may subscribe to or
// pull the topic name. Public topics, those not starting with "priv.", are
// always readable (--require-auth is the caller's business). A private topic
// "priv.<name>.<sub>" (<name> one or more segments) is readable by the user
// whose sub is its last segment, or by claims whose Topics match it.
func CanRead(c *Claims, name string) bool {
	if !strings.HasPrefix(name, privPrefix) {
		return true
	}
	if c == nil {
		return false
	}
	if c.Topics.Match(name) {
		return true
	}
	rest := name[len(privPrefix):]
	i := strings.LastIndexByte(rest, '.')
	if i <= 0 {
		return false // "priv.x" has no <name>.<sub>
	}
	return c.Sub != "" && rest[i+1:] == c.Sub
}

// CanPublish reports whether c may publish to the topic name: only a client
// with claims whose Pub matches it.
func CanPublish(c *Claims, name string) bool {
	return c != nil && c.Pub.Match(name)
}
