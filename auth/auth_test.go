package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tickfan/tickfan/topic"
)

// tokenNow is the fixed clock of these tests; tokens are valid for an hour.
var (
	tokenNow    = time.Unix(1_800_000_000, 0)
	tokenExp    = tokenNow.Add(time.Hour)
	tokenSecret = []byte("0123456789abcdef0123456789abcdef")
)

// testKeys are generated once: RSA generation is slow under -race.
type testKeys struct {
	rsa, rsa2 *rsa.PrivateKey
	ec, ec2   *ecdsa.PrivateKey
	ec384     *ecdsa.PrivateKey
	ed        ed25519.PublicKey
}

var keysOnce = sync.OnceValue(func() testKeys {
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	var k testKeys
	var err error
	k.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.rsa2, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	k.ec2, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	k.ec384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	must(err)
	k.ed, _, err = ed25519.GenerateKey(rand.Reader)
	must(err)
	return k
})

func pkixPEM(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func sign(t testing.TB, m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", m.Alg(), err)
	}
	return s
}

// baseClaims returns valid claims; each call a fresh map a case may edit.
func baseClaims(edit func(jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{"sub": "42", "exp": tokenExp.Unix(), "iat": tokenNow.Unix()}
	if edit != nil {
		edit(c)
	}
	return c
}

func newTestVerifier(t testing.TB, cfg Config) *Verifier {
	t.Helper()
	v, err := NewVerifier(cfg)
	if err != nil || v == nil {
		t.Fatalf("NewVerifier: %v, %v", v, err)
	}
	return v
}

func patternStrings(ps topic.Patterns) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

func TestNewVerifier(t *testing.T) {
	k := keysOnce()
	rsaPKCS1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)})
	privDER, err := x509.MarshalPKCS8PrivateKey(k.ec)
	if err != nil {
		t.Fatal(err)
	}
	privPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})

	tests := []struct {
		name    string
		cfg     Config
		off     bool
		alg     string
		slow    bool
		wantErr string
	}{
		{name: "zero is off", cfg: Config{}, off: true},
		{name: "empty slices are off", cfg: Config{Secret: []byte{}, KeyPEM: []byte{}}, off: true},
		{name: "secret", cfg: Config{Secret: tokenSecret}, alg: "HS256"},
		{name: "rsa pkix", cfg: Config{KeyPEM: pkixPEM(t, &k.rsa.PublicKey)}, alg: "RS256", slow: true},
		{name: "rsa pkcs1", cfg: Config{KeyPEM: rsaPKCS1}, alg: "RS256", slow: true},
		{name: "ecdsa p256", cfg: Config{KeyPEM: pkixPEM(t, &k.ec.PublicKey)}, alg: "ES256", slow: true},
		{name: "both", cfg: Config{Secret: tokenSecret, KeyPEM: pkixPEM(t, &k.ec.PublicKey)}, wantErr: "not both"},
		{name: "not pem", cfg: Config{KeyPEM: []byte("not a pem file")}, wantErr: "no PEM block"},
		{name: "bad der", cfg: Config{KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("junk")})}, wantErr: "parse PUBLIC KEY"},
		{name: "bad pkcs1", cfg: Config{KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: []byte("junk")})}, wantErr: "parse RSA PUBLIC KEY"},
		{name: "private key", cfg: Config{KeyPEM: privPEM}, wantErr: "give the public key"},
		{name: "certificate", cfg: Config{KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("x")})}, wantErr: "not a public key"},
		{name: "ed25519", cfg: Config{KeyPEM: pkixPEM(t, k.ed)}, wantErr: "not supported"},
		{name: "ecdsa p384", cfg: Config{KeyPEM: pkixPEM(t, &k.ec384.PublicKey)}, wantErr: "P-384 is not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := NewVerifier(tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				if v != nil {
					t.Fatalf("verifier %v returned with an error", v)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if tt.off {
				if v != nil {
					t.Fatalf("got a verifier for an empty config")
				}
				return
			}
			if got := v.alg; got != tt.alg {
				t.Errorf("alg = %q, want %q", got, tt.alg)
			}
			if got := v.Slow(); got != tt.slow {
				t.Errorf("Slow() = %v, want %v", got, tt.slow)
			}
		})
	}
}

func TestNewVerifierCopiesSecret(t *testing.T) {
	secret := append([]byte(nil), tokenSecret...)
	v := newTestVerifier(t, Config{Secret: secret})
	secret[0] ^= 0xff
	tok := sign(t, jwt.SigningMethodHS256, tokenSecret, baseClaims(nil))
	if _, err := v.Verify(tok, tokenNow); err != nil {
		t.Fatalf("Verify after the caller changed its slice: %v", err)
	}
}

func TestVerifyValid(t *testing.T) {
	k := keysOnce()
	hs := newTestVerifier(t, Config{Secret: tokenSecret})
	rs := newTestVerifier(t, Config{KeyPEM: pkixPEM(t, &k.rsa.PublicKey)})
	es := newTestVerifier(t, Config{KeyPEM: pkixPEM(t, &k.ec.PublicKey)})

	tests := []struct {
		name       string
		v          *Verifier
		method     jwt.SigningMethod
		key        any
		claims     jwt.MapClaims
		now        time.Time
		wantTopics []string
		wantPub    []string
	}{
		{name: "HS256", v: hs, method: jwt.SigningMethodHS256, key: tokenSecret, claims: baseClaims(nil)},
		{name: "RS256", v: rs, method: jwt.SigningMethodRS256, key: k.rsa, claims: baseClaims(nil)},
		{name: "ES256", v: es, method: jwt.SigningMethodES256, key: k.ec, claims: baseClaims(nil)},
		{
			name: "topics and pub", v: hs, method: jwt.SigningMethodHS256, key: tokenSecret,
			claims: baseClaims(func(c jwt.MapClaims) {
				c["topics"] = []string{"priv.orders.*", "priv.fills.>"}
				c["pub"] = []string{"ticker.*"}
			}),
			wantTopics: []string{"priv.orders.*", "priv.fills.>"},
			wantPub:    []string{"ticker.*"},
		},
		{
			name: "null and empty lists", v: hs, method: jwt.SigningMethodHS256, key: tokenSecret,
			claims: baseClaims(func(c jwt.MapClaims) { c["topics"] = nil; c["pub"] = []string{} }),
		},
		{
			name: "nbf reached", v: hs, method: jwt.SigningMethodHS256, key: tokenSecret,
			claims: baseClaims(func(c jwt.MapClaims) { c["nbf"] = tokenNow.Unix() }),
		},
		{
			name: "one second before exp", v: hs, method: jwt.SigningMethodHS256, key: tokenSecret,
			claims: baseClaims(nil), now: tokenExp.Add(-time.Second),
		},
		{
			name: "unknown claims ignored", v: es, method: jwt.SigningMethodES256, key: k.ec,
			claims: baseClaims(func(c jwt.MapClaims) { c["aud"] = "tickfan"; c["x"] = map[string]any{"y": 1} }),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := tt.now
			if now.IsZero() {
				now = tokenNow
			}
			got, err := tt.v.Verify(sign(t, tt.method, tt.key, tt.claims), now)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got.Sub != "42" || !got.Exp.Equal(tokenExp) {
				t.Errorf("claims = %q %v, want \"42\" %v", got.Sub, got.Exp, tokenExp)
			}
			if g := patternStrings(got.Topics); strings.Join(g, ",") != strings.Join(tt.wantTopics, ",") {
				t.Errorf("Topics = %q, want %q", g, tt.wantTopics)
			}
			if g := patternStrings(got.Pub); strings.Join(g, ",") != strings.Join(tt.wantPub, ",") {
				t.Errorf("Pub = %q, want %q", g, tt.wantPub)
			}
		})
	}
}

func TestVerifyRefused(t *testing.T) {
	k := keysOnce()
	rsaPEM := pkixPEM(t, &k.rsa.PublicKey)
	ecPEM := pkixPEM(t, &k.ec.PublicKey)
	hs := newTestVerifier(t, Config{Secret: tokenSecret})
	rs := newTestVerifier(t, Config{KeyPEM: rsaPEM})
	es := newTestVerifier(t, Config{KeyPEM: ecPEM})
	hsTok := func(edit func(jwt.MapClaims)) string {
		return sign(t, jwt.SigningMethodHS256, tokenSecret, baseClaims(edit))
	}
	noneTok := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, baseClaims(nil))
	valid := hsTok(nil)
	parts := strings.Split(valid, ".")
	enc := base64.RawURLEncoding.EncodeToString

	tests := []struct {
		name   string
		v      *Verifier
		token  string
		reason string // a part of the error after "bad token: "
	}{
		{"expired", hs, hsTok(func(c jwt.MapClaims) { c["exp"] = tokenNow.Unix() - 1 }), "expired"},
		{"exp is now", hs, hsTok(func(c jwt.MapClaims) { c["exp"] = tokenNow.Unix() }), "expired"},
		{"nbf in the future", hs, hsTok(func(c jwt.MapClaims) { c["nbf"] = tokenNow.Unix() + 60 }), "not valid yet"},
		{"missing exp", hs, hsTok(func(c jwt.MapClaims) { delete(c, "exp") }), "missing exp"},
		{"missing sub", hs, hsTok(func(c jwt.MapClaims) { delete(c, "sub") }), "missing sub"},
		{"empty sub", hs, hsTok(func(c jwt.MapClaims) { c["sub"] = "" }), "missing sub"},
		{"numeric sub", hs, hsTok(func(c jwt.MapClaims) { c["sub"] = 42 }), "malformed"},
		{"exp not a number", hs, hsTok(func(c jwt.MapClaims) { c["exp"] = "tomorrow" }), "must be numbers"},
		{"exp a number in a string", hs, hsTok(func(c jwt.MapClaims) { c["exp"] = strconv.FormatInt(tokenNow.Unix()+3600, 10) }), "must be numbers"},
		{"nbf a number in a string", hs, hsTok(func(c jwt.MapClaims) { c["nbf"] = strconv.FormatInt(tokenNow.Unix()-60, 10) }), "must be numbers"},
		{"iat a number in a string", hs, hsTok(func(c jwt.MapClaims) { c["iat"] = strconv.FormatInt(tokenNow.Unix()-60, 10) }), "must be numbers"},
		{"wrong secret", hs, sign(t, jwt.SigningMethodHS256, []byte("another secret, just as long...."), baseClaims(nil)), "invalid signature"},
		{"wrong rsa key", rs, sign(t, jwt.SigningMethodRS256, k.rsa2, baseClaims(nil)), "invalid signature"},
		{"wrong ecdsa key", es, sign(t, jwt.SigningMethodES256, k.ec2, baseClaims(nil)), "invalid signature"},
		{"tampered payload", hs, parts[0] + "." + enc([]byte(`{"sub":"43","exp":1800003600}`)) + "." + parts[2], "invalid signature"},
		{"alg confusion rsa", rs, sign(t, jwt.SigningMethodHS256, rsaPEM, baseClaims(nil)), "algorithm HS256 not accepted"},
		{"alg confusion ecdsa", es, sign(t, jwt.SigningMethodHS256, ecPEM, baseClaims(nil)), "algorithm HS256 not accepted"},
		{"RS256 to HS256 verifier", hs, sign(t, jwt.SigningMethodRS256, k.rsa, baseClaims(nil)), "algorithm RS256 not accepted"},
		{"ES256 to RS256 verifier", rs, sign(t, jwt.SigningMethodES256, k.ec, baseClaims(nil)), "algorithm ES256 not accepted"},
		{"PS256 with the right key", rs, sign(t, jwt.SigningMethodPS256, k.rsa, baseClaims(nil)), "algorithm PS256 not accepted"},
		{"HS384 with the right secret", hs, sign(t, jwt.SigningMethodHS384, tokenSecret, baseClaims(nil)), "algorithm HS384 not accepted"},
		{"alg none to HS256", hs, noneTok, "algorithm none not accepted"},
		{"alg none to RS256", rs, noneTok, "algorithm none not accepted"},
		{"unknown alg", hs, enc([]byte(`{"alg":"XX999","typ":"JWT"}`)) + "." + parts[1] + "." + parts[2], "unknown or unusable"},
		{"no alg", hs, enc([]byte(`{"typ":"JWT"}`)) + "." + parts[1] + "." + parts[2], "unknown or unusable"},
		{"empty", hs, "", "empty"},
		{"garbage", hs, "garbage", "malformed"},
		{"dots", hs, "..", "malformed"},
		{"four parts", hs, valid + ".x", "malformed"},
		{"bad base64", hs, "!!!." + parts[1] + "." + parts[2], "malformed"},
		{"header not json", hs, enc([]byte("nope")) + "." + parts[1] + "." + parts[2], "malformed"},
		{"payload not json", hs, parts[0] + "." + enc([]byte("[1,2")) + "." + parts[2], "malformed"},
		{"too long", hs, strings.Repeat("a", MaxTokenLen+1), "longer than"},
		{"nil verifier", nil, valid, "off"},
		{"topics a string", hs, hsTok(func(c jwt.MapClaims) { c["topics"] = "priv.orders.*" }), "topics claim must be a list of strings"},
		{"topics numbers", hs, hsTok(func(c jwt.MapClaims) { c["topics"] = []int{1, 2} }), "topics claim must be a list of strings"},
		{"topics an object", hs, hsTok(func(c jwt.MapClaims) { c["topics"] = map[string]int{"a": 1} }), "topics claim must be a list of strings"},
		{"pub a bool", hs, hsTok(func(c jwt.MapClaims) { c["pub"] = true }), "pub claim must be a list of strings"},
		{"pub mixed", hs, hsTok(func(c jwt.MapClaims) { c["pub"] = []any{"a.b", 3} }), "pub claim must be a list of strings"},
		{"topics empty pattern", hs, hsTok(func(c jwt.MapClaims) { c["topics"] = []string{"a.b", ""} }), "topics[1]"},
		{"topics > not last", hs, hsTok(func(c jwt.MapClaims) { c["topics"] = []string{"priv.>.x"} }), "topics[0]"},
		{"topics empty segment", hs, hsTok(func(c jwt.MapClaims) { c["topics"] = []string{"priv..x"} }), "empty segment"},
		{"pub bad byte", hs, hsTok(func(c jwt.MapClaims) { c["pub"] = []string{"ticker.$"} }), "pub[0]"},
		{"pub too long", hs, hsTok(func(c jwt.MapClaims) { c["pub"] = []string{strings.Repeat("a.", 150) + ">"} }), "pub[0]: pattern longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.v.Verify(tt.token, tokenNow)
			if !errors.Is(err, ErrBadToken) {
				t.Fatalf("err = %v, want ErrBadToken; claims %+v", err, c)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("err = %q, want it to contain %q", err, tt.reason)
			}
			if len(tt.token) > 8 && strings.Contains(err.Error(), tt.token) {
				t.Errorf("err %q holds the token", err)
			}
			if c.Sub != "" || !c.Exp.IsZero() || c.Topics != nil || c.Pub != nil {
				t.Errorf("claims %+v returned with an error", c)
			}
		})
	}
}

func TestVerifyConcurrent(t *testing.T) {
	v := newTestVerifier(t, Config{Secret: tokenSecret})
	tok := sign(t, jwt.SigningMethodHS256, tokenSecret, baseClaims(nil))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			now := tokenNow
			if i%2 == 1 {
				now = tokenExp // expired for half: each call must use its own now
			}
			for range 50 {
				_, err := v.Verify(tok, now)
				if (err == nil) != (i%2 == 0) {
					t.Errorf("goroutine %d: err = %v", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func mustPatterns(t *testing.T, s string) topic.Patterns {
	t.Helper()
	ps, err := topic.ParsePatterns(s)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func TestCanReadCanPublish(t *testing.T) {
	sub42 := &Claims{Sub: "42"}
	sub43 := &Claims{Sub: "43"}
	sub43Orders := &Claims{Sub: "43", Topics: mustPatterns(t, "priv.orders.*")}
	sub43Deep := &Claims{Sub: "43", Topics: mustPatterns(t, "priv.>")}
	noSub := &Claims{}
	pub := &Claims{Sub: "42", Pub: mustPatterns(t, "ticker.*, priv.orders.42")}

	tests := []struct {
		name    string
		c       *Claims
		topic   string
		read    bool
		publish bool
	}{
		{"anon public", nil, "ticker.BTCUSD", true, false},
		{"anon priv", nil, "priv.orders.42", false, false},
		{"user public", sub43, "ticker.BTCUSD", true, false},
		{"owner", sub42, "priv.orders.42", true, false},
		{"other user", sub43, "priv.orders.42", false, false},
		{"other user with topics", sub43Orders, "priv.orders.42", true, false},
		{"topics do not reach other names", sub43Orders, "priv.fills.42", false, false},
		{"topics * is one segment", sub43Orders, "priv.orders.x.42", false, false},
		{"topics >", sub43Deep, "priv.orders.x.42", true, false},
		{"nested owner", sub42, "priv.orders.x.42", true, false},
		{"nested not owner", sub42, "priv.orders.42.x", false, false},
		{"sub in the middle only", sub42, "priv.42.orders", false, false},
		{"no name segment", sub42, "priv.42", false, false},
		{"priv alone is public", nil, "priv", true, false},
		{"privx is public", nil, "private.orders.42", true, false},
		{"PRIV is public", nil, "PRIV.orders.42", true, false},
		{"priv dot only", sub42, "priv.", false, false},
		{"trailing dot", sub42, "priv.orders.", false, false},
		{"empty name segment", sub42, "priv..42", false, false},
		{"empty sub never owns", noSub, "priv.orders.", false, false},
		{"sub is a suffix only", sub42, "priv.orders.142", false, false},
		{"empty topic", nil, "", true, false},
		{"publisher on match", pub, "ticker.BTCUSD", true, true},
		{"publisher off pattern", pub, "book.BTCUSD", true, false},
		{"publisher * one segment", pub, "ticker.BTC.USD", true, false},
		{"publisher on own priv", pub, "priv.orders.42", true, true},
		{"publish without pub claim", sub42, "ticker.BTCUSD", true, false},
		{"owner cannot publish without pub", sub42, "priv.orders.42", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CanRead(tt.c, tt.topic); got != tt.read {
				t.Errorf("CanRead(%v, %q) = %v, want %v", tt.c, tt.topic, got, tt.read)
			}
			if got := CanPublish(tt.c, tt.topic); got != tt.publish {
				t.Errorf("CanPublish(%v, %q) = %v, want %v", tt.c, tt.topic, got, tt.publish)
			}
		})
	}
}

// fuzzToken signs payload (any bytes, used as the claims JSON) with HS256 and
// tokenSecret, so the fuzzer reaches the claim checks behind the signature.
func fuzzToken(payload string) string {
	enc := base64.RawURLEncoding.EncodeToString
	s := enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc([]byte(payload))
	sig, err := jwt.SigningMethodHS256.Sign(s, tokenSecret)
	if err != nil {
		panic(err)
	}
	return s + "." + enc(sig)
}

// FuzzVerify feeds Verify a raw token (signed false) or a claims payload it
// signs first (signed true). Verify must not panic, must refuse with
// ErrBadToken, and what it accepts must hold a sub and a future exp.
func FuzzVerify(f *testing.F) {
	valid := sign(f, jwt.SigningMethodHS256, tokenSecret, jwt.MapClaims{
		"sub": "42", "exp": tokenExp.Unix(), "topics": []string{"priv.orders.*"}, "pub": []string{"ticker.>"},
	})
	f.Add(valid, false)
	f.Add("garbage", false)
	f.Add("a.b.c", false)
	f.Add(`{"sub":"42","exp":1800003600,"topics":["priv.orders.*"],"pub":["ticker.>"]}`, true)
	f.Add(`{"sub":"42","exp":1800003600,"nbf":1700000000,"topics":"x"}`, true)
	v := newTestVerifier(f, Config{Secret: tokenSecret})
	if _, err := v.Verify(valid, tokenNow); err != nil {
		f.Fatalf("seed token refused: %v", err) // testdata/fuzz/FuzzVerify/valid_token holds the same token
	}
	f.Fuzz(func(t *testing.T, s string, signed bool) {
		tok := s
		if signed {
			tok = fuzzToken(s)
		}
		c, err := v.Verify(tok, tokenNow)
		if err != nil {
			if !errors.Is(err, ErrBadToken) {
				t.Fatalf("err %v does not wrap ErrBadToken", err)
			}
			return
		}
		if c.Sub == "" || c.Exp.IsZero() {
			t.Fatalf("accepted claims without sub or exp: %+v", c)
		}
		if !c.Exp.After(tokenNow) {
			t.Fatalf("accepted an expired token: exp %v", c.Exp)
		}
		for _, p := range append(append(topic.Patterns(nil), c.Topics...), c.Pub...) {
			if _, err := topic.ParsePattern(p.String()); err != nil {
				t.Fatalf("accepted pattern %q: %v", p, err)
			}
		}
	})
}
