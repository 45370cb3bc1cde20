package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tickfan/tickfan/topic"
)

// tokenCmd mints an HS256 client token for testing against a server
// started with the same --jwt-secret.
func tokenCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: tickfan token --secret S [--sub user] [--exp 1h] [--topics p1,p2] [--pub p1,p2]\n\n"+
			"Prints an HS256 JWT for clients of a server started with the same --jwt-secret\n"+
			"(for testing: production tokens come from your own auth service). Patterns\n"+
			"are as in PROTOCOL.md: * matches one segment, a final > one or more.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	secret := fs.String("secret", "", "HS256 `secret`, the server's --jwt-secret")
	secretFile := fs.String("secret-file", "", "`file` whose first line is the secret (wins over --secret)")
	subject := fs.String("sub", "user", "user `id` (sub claim); it owns the private topics priv.<name>.<id>")
	exp := fs.Duration("exp", time.Hour, "lifetime from now (`duration`; exp claim)")
	topics := fs.String("topics", "", "extra private topic `patterns` the token may read, comma separated (topics claim)")
	pubs := fs.String("pub", "", "topic `patterns` the token may publish to, comma separated (pub claim)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return badUsage("unexpected arguments %q (flags only; see tickfan token -h)", fs.Args())
	}
	key := *secret
	if *secretFile != "" {
		var err error
		if key, err = firstLine("secret-file", *secretFile); err != nil {
			return usageError{err}
		}
	}
	if key == "" {
		return badUsage("--secret, --secret-file or TICKFAN_SECRET is needed: the server's --jwt-secret")
	}
	if *subject == "" {
		return badUsage(`--sub "": the token needs a user id`)
	}
	if *exp <= 0 {
		return badUsage("--exp %s: must be more than 0", *exp)
	}
	now := time.Now()
	claims := jwt.MapClaims{"sub": *subject, "iat": now.Unix(), "exp": now.Add(*exp).Unix()}
	for _, c := range []struct{ flag, claim, v string }{{"topics", "topics", *topics}, {"pub", "pub", *pubs}} {
		list, err := patternList(c.v)
		if err != nil {
			return badUsage("--%s %q: %v", c.flag, c.v, err)
		}
		if len(list) > 0 {
			claims[c.claim] = list
		}
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(key))
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

// patternList splits a comma-separated pattern list and checks each
// pattern as the server will, so a minted token is never refused for it.
func patternList(s string) ([]string, error) {
	var list []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if _, err := topic.ParsePattern(p); err != nil {
			return nil, err
		}
		list = append(list, p)
	}
	return list, nil
}
