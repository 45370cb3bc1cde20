package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/tickfan/tickfan/server"
)

const jwtSecret = "test-secret"

func hsToken(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(jwtSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func withJWT(c *server.Config) { c.JWTSecret = jwtSecret; c.AnonymousPub = "" }

func TestAuthAndPrivateTopics(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr transport) {
		n := start(t, withJWT)
		check := healthy(t, n)
		exp := time.Now().Add(time.Hour).Unix()
		c := tr.dial(t, n)

		// Anonymous: private topics 401, pub 401, public topics open.
		c.fail(t, map[string]any{"op": "sub", "topics": []string{"priv.orders.42"}}, 401)
		c.fail(t, map[string]any{"op": "pub", "t": "book.A", "d": 1}, 401)
		c.sub1(t, "book.OPEN", nil)

		// A bad token: 401, the connection stays.
		c.fail(t, map[string]any{"op": "auth", "token": "nonsense"}, 401)
		c.fail(t, map[string]any{"op": "auth", "token": hsToken(t, jwt.MapClaims{"sub": "42", "exp": time.Now().Add(-time.Minute).Unix()})}, 401)
		c.alive(t)

		res := c.ok(t, map[string]any{"op": "auth", "token": hsToken(t, jwt.MapClaims{
			"sub": "42", "exp": exp, "topics": []string{"priv.desk.*"}, "pub": []string{"book.>"}})})
		if res["sub"] != "42" || res["exp"] != exp {
			t.Fatalf("auth reply %s, want sub 42 exp %d", show(res), exp)
		}
		c.sub1(t, "priv.orders.42", nil) // the user's own
		c.sub1(t, "priv.desk.fx", nil)   // granted by topics
		c.fail(t, map[string]any{"op": "sub", "topics": []string{"priv.orders.43"}}, 403)
		c.pub(t, "book.A", map[string]any{"p": 1}, false)
		c.fail(t, map[string]any{"op": "pub", "t": "trade.A", "d": 1}, 403)
		// Another user's token on this connection: 403.
		c.fail(t, map[string]any{"op": "refresh", "token": hsToken(t, jwt.MapClaims{"sub": "43", "exp": exp})}, 403)
		check()
	})
}

func TestTokenExpiryAndRefresh(t *testing.T) {
	t.Parallel()
	n := start(t, withJWT)
	check := healthy(t, n)
	// JWT exp has whole seconds: expire at the next second but one.
	exp := time.Now().Add(2 * time.Second).Truncate(time.Second)
	short := dialTCP(t, n)
	short.ok(t, map[string]any{"op": "auth", "token": hsToken(t, jwt.MapClaims{"sub": "7", "exp": exp.Unix()})})
	refreshed := dialTCP(t, n)
	refreshed.ok(t, map[string]any{"op": "auth", "token": hsToken(t, jwt.MapClaims{"sub": "8", "exp": exp.Unix()})})
	refreshed.ok(t, map[string]any{"op": "refresh", "token": hsToken(t, jwt.MapClaims{"sub": "8", "exp": exp.Add(time.Hour).Unix()})})

	m, err := short.recvWithin(5 * time.Second)
	if err != nil || m["op"] != "close" || m["code"] != int64(closeTokenExpired) {
		t.Fatalf("expired token: %v %v, want op close 4002", m, err)
	}
	if early := time.Until(exp); early > 50*time.Millisecond {
		t.Fatalf("closed %v before the token's exp", early)
	}
	time.Sleep(200 * time.Millisecond)
	refreshed.alive(t)
	check()
}

func TestRequireAuth(t *testing.T) {
	t.Parallel()
	n := start(t, withJWT, func(c *server.Config) { c.RequireAuth = true })
	c := dialWS(t, n, protoJSON)
	c.fail(t, map[string]any{"op": "sub", "topics": []string{"book.A"}}, 401)
	c.ok(t, map[string]any{"op": "auth", "token": hsToken(t, jwt.MapClaims{"sub": "1", "exp": time.Now().Add(time.Hour).Unix()})})
	c.sub1(t, "book.A", nil)
}

// TestSlowTokenCheckKeepsOrder uses ES256, checked off the event loop, and
// pipelines commands behind the auth: every reply must come in order.
func TestSlowTokenCheckKeepsOrder(t *testing.T) {
	t.Parallel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	file := filepath.Join(t.TempDir(), "jwt.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	n := start(t, func(c *server.Config) { c.JWTKeyFile = file })
	check := healthy(t, n)
	token, err := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"sub": "99", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	eachTransport(t, func(t *testing.T, tr transport) {
		c := tr.dial(t, n)
		c.mustSend(t, map[string]any{"op": "auth", "id": 1, "token": token})
		c.mustSend(t, map[string]any{"op": "sub", "id": 2, "topics": []string{"priv.orders.99"}})
		c.mustSend(t, map[string]any{"op": "ping", "id": 3})
		for id := 1; id <= 3; id++ {
			m := c.next(t)
			if got, _ := asUint(m["id"]); got != uint64(id) || m["err"] != nil {
				t.Fatalf("reply %d: %s", id, m)
			}
		}
	})
	check()
}

func TestAllowedOrigins(t *testing.T) {
	t.Parallel()
	n := start(t, func(c *server.Config) { c.AllowedOrigins = "https://app.example.com" })
	check := healthy(t, n) // no Origin: not a browser, allowed
	url := "ws://" + n.srv.WSAddr() + "/ws"
	_, resp, err := websocket.DefaultDialer.Dial(url, http.Header{"Origin": {"https://evil.example.com"}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin: %v %v, want 403", resp, err)
	}
	ws, _, err := websocket.DefaultDialer.Dial(url, http.Header{"Origin": {"https://APP.example.com"}})
	if err != nil {
		t.Fatalf("allowed origin: %v", err)
	}
	ws.Close()
	check()
}

func TestAPIKeyFile(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n := start(t, func(c *server.Config) { c.APIKeyFile = file })
	r, err := n.post("/api/publish", "apikey from-file", map[string]any{"t": "book.K", "d": 1})
	if err != nil || r.status != 200 {
		t.Fatalf("key from the file: %v %v", r.status, err)
	}
	r, _ = n.post("/api/publish", "apikey "+apiKey, map[string]any{"t": "book.K", "d": 1})
	expectHTTPErr(t, "--api-key after --api-key-file", r, 401)
}

// TestJWTSecretFile: the HS256 secret can come from a file (so it is on
// no command line), and the file wins over --jwt-secret.
func TestJWTSecretFile(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "jwt")
	if err := os.WriteFile(file, []byte(jwtSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n := start(t, func(c *server.Config) { c.JWTSecret, c.JWTSecretFile = "another secret", file })
	c := dialWS(t, n, protoJSON)
	res := c.ok(t, map[string]any{"op": "auth", "token": hsToken(t, jwt.MapClaims{"sub": "9", "exp": time.Now().Add(time.Hour).Unix()})})
	if res["sub"] != "9" {
		t.Fatalf("auth with a token of the file's secret: %s", show(res))
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "9", "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte("another secret"))
	if err != nil {
		t.Fatal(err)
	}
	c.fail(t, map[string]any{"op": "auth", "token": tok}, 401)
}
