package bench

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"time"
)

// Scenarios, in the order "all" runs them: idle first, so that its memory
// figure is taken on a server that has not yet grown for the others.
var Scenarios = []string{"idle", "fanout", "saturate", "slow", "herd", "hft"}

// Config is one invocation of the load generator. The zero value of a
// field means its default, which for the sizes depends on the scenario
// (see the field comments and Defaults).
type Config struct {
	// Scenario is fanout, saturate, idle, slow, herd, hft or all.
	Scenario string
	// WSURL is the server's WebSocket URL. Default ws://127.0.0.1:8080/ws.
	WSURL string
	// TCPAddr is the server's msgpack-over-TCP address. Default 127.0.0.1:8081.
	TCPAddr string
	// HTTPURL is the server's HTTP API, read for /metrics counters when
	// reachable. Default http://127.0.0.1:8082; "-" for none.
	HTTPURL string
	// Label names the engine or setup under test in the results (free text).
	Label string
	// PID is the server's process id, for its CPU time and memory. Default:
	// the process listening on the WebSocket port, if it can be found.
	PID int
	// Token is a JWT with a pub claim for the publisher. Default none: the
	// server must allow anonymous pub to bench.> (--anonymous-pub 'bench.>').
	Token string

	// Proto is the subscribers' transport. Default ws-json (tcp for hft).
	Proto Proto
	// Conns is the number of subscriber connections. Default: fanout and
	// saturate 10000, idle 15000, slow 1000, herd 5000, hft 10.
	Conns int
	// Topics is the number of topics; connection i holds topic i % Topics.
	// Default 10 (hft 1).
	Topics int
	// HFTConns are the subscriber counts hft runs, one result each, with
	// the baselines measured before the first and after the last. Default
	// 1 and 10, or Conns alone when it is set.
	HFTConns []int
	// Echo is the address of a TCP echo server (tickfan bench echo) for
	// hft's cross-core baseline. Default none: no echo baseline.
	Echo string
	// Rate is publications per second per topic. Default: fanout 10,
	// slow 50, herd 20, hft 10000.
	Rate float64
	// Rates are the per-topic rates saturate steps through, stopping after
	// the first that does not keep up. Default 10, 20, 50, 100, 200, 400, 800.
	Rates []float64
	// Size is the payload size in bytes (msgpack), at least 20 (the due
	// and sent times). Default 200
	// (slow 2048, hft 64).
	Size int
	// Duration is the measured window. Default 10 s (saturate: 5 s a step,
	// herd: 8 s from the disconnect).
	Duration time.Duration
	// Warmup is publishing before the measured window. Default 2 s
	// (saturate: 1 s a step).
	Warmup time.Duration
	// Drain is the longest wait after the last publication for every
	// subscriber to catch up. Default 5 s.
	Drain time.Duration
	// SlowFrac is the fraction of slow scenario connections that stop
	// reading after the warm-up. Default 0.1.
	SlowFrac float64
	// SoakPhases are the soak scenario's phases, named after the network
	// condition of each (scripts/soak-weaknet applies them on the same
	// schedule); their total replaces Duration. Default one phase "all" of
	// Duration.
	SoakPhases []SoakPhase
	// HerdGap is how long herd subscribers stay away. Default 1 s.
	HerdGap time.Duration
	// Settle is the pause before idle reads memory. Default 3 s.
	Settle time.Duration
	// IdleNoSub leaves idle connections without a subscription. Default
	// false: each holds one topic.
	IdleNoSub bool
	// PubConns is the number of publisher connections; topic t is published
	// on connection t % PubConns. Default 1.
	PubConns int
	// Loops is the bench's gnet event loops. Default one per CPU it may use.
	Loops int
	// Dialers is how many connections are opened at once. Default 64.
	Dialers int
	// Pace is how the publisher waits for due times. Default PaceTimer.
	Pace Pace

	// Log receives progress lines. Default: nothing.
	Log io.Writer

	// Target is the server under test: tickfan, or centrifugo (its JSON
	// protocol over WebSocket, its HTTP API; fanout only). Default tickfan.
	Target string
	// PubHTTP publishes each publication as its own POST to the server's
	// HTTP publish endpoint (HTTPURL + /api/publish) instead of TCP pub
	// commands; always so for centrifugo. Fanout only.
	PubHTTP bool
	// APIKey is tickfan's --api-key, for HTTP publishing.
	APIKey string
	// CentrifugoAPIKey is Centrifugo's api_key, sent as X-API-Key.
	CentrifugoAPIKey string
	// PubInflight bounds the HTTP publisher's requests in flight, and so its
	// keep-alive connections. Default 64.
	PubInflight int
	// EmitVersus, when set, receives the runs of the HTTP path (which carry
	// figures Result has no field for) instead of Run's emit.
	EmitVersus func(Versus) error
}

func (c *Config) logw() io.Writer {
	if c.Log == nil {
		return io.Discard
	}
	return c.Log
}

func (c *Config) logf(format string, a ...any) {
	fmt.Fprintf(c.logw(), "bench: "+format+"\n", a...)
}

// Defaults returns c with every zero field of scenario set to its default.
func (c Config) Defaults(scenario string) Config {
	c.Scenario = scenario
	setS := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	setS(&c.WSURL, "ws://127.0.0.1:8080/ws")
	setS(&c.TCPAddr, "127.0.0.1:8081")
	setS(&c.HTTPURL, "http://127.0.0.1:8082")
	setI := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	setD := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	setF := func(v *float64, d float64) {
		if *v <= 0 {
			*v = d
		}
	}
	conns, topics, rate, size := 10000, 10, 10.0, 200
	dur, warm := 10*time.Second, 2*time.Second
	switch scenario {
	case "saturate":
		dur, warm = 5*time.Second, 1*time.Second
	case "idle":
		conns = 15000
	case "slow":
		conns, rate, size = 1000, 50, 2048
	case "herd":
		conns, rate, dur = 5000, 20, 8*time.Second
	case "soak":
		conns, topics, rate, dur = 30, 4, 50, 60*time.Second
	case "hft":
		conns, topics, rate, size = 10, 1, 10000, 64
		if len(c.HFTConns) == 0 {
			if c.Conns > 0 {
				c.HFTConns = []int{c.Conns}
			} else {
				c.HFTConns = []int{1, 10}
			}
		}
		if c.Proto == "" {
			c.Proto = ProtoTCP
		}
	}
	if c.Proto == "" {
		c.Proto = ProtoWSJSON
	}
	if c.Pace == "" {
		c.Pace = PaceTimer
	}
	setI(&c.Conns, conns)
	setI(&c.Topics, topics)
	setF(&c.Rate, rate)
	setI(&c.Size, size)
	c.Size = max(c.Size, minPayload)
	setD(&c.Duration, dur)
	setD(&c.Warmup, warm)
	setD(&c.Drain, 5*time.Second)
	setF(&c.SlowFrac, 0.1)
	setD(&c.HerdGap, time.Second)
	setD(&c.Settle, 3*time.Second)
	setI(&c.PubConns, 1)
	setI(&c.Dialers, 64)
	if scenario == "soak" {
		soakDefaults(&c)
	}
	if len(c.Rates) == 0 {
		c.Rates = []float64{10, 20, 50, 100, 200, 400, 800}
	}
	return c
}

// check validates a config that has its defaults.
func (c *Config) check() error {
	if _, err := ParseProto(string(c.Proto)); err != nil {
		return err
	}
	if _, err := ParsePace(string(c.Pace)); err != nil {
		return err
	}
	u, err := url.Parse(c.WSURL)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return fmt.Errorf("--ws %q: want ws://host:port/path", c.WSURL)
	}
	if u.Scheme == "wss" {
		return fmt.Errorf("--ws %q: TLS is not supported by the bench", c.WSURL)
	}
	if _, _, err := net.SplitHostPort(c.TCPAddr); err != nil {
		return fmt.Errorf("--tcp %q: %w", c.TCPAddr, err)
	}
	if c.SlowFrac <= 0 || c.SlowFrac >= 1 {
		return fmt.Errorf("--slow-frac %v: want a fraction between 0 and 1", c.SlowFrac)
	}
	for _, n := range c.HFTConns {
		if n <= 0 {
			return fmt.Errorf("hft subscriber count %d: want 1 or more", n)
		}
	}
	if c.Echo != "" {
		if _, _, err := net.SplitHostPort(c.Echo); err != nil {
			return fmt.Errorf("--echo %q: %w", c.Echo, err)
		}
	}
	for _, r := range c.Rates {
		if r <= 0 {
			return fmt.Errorf("--rates: %v is not a rate", r)
		}
	}
	return nil
}

// wsPort is the port of the WebSocket URL, for finding the server's pid.
func (c *Config) wsPort() int {
	u, err := url.Parse(c.WSURL)
	if err != nil {
		return 0
	}
	port := u.Port()
	if port == "" {
		port = "80"
	}
	n, _ := strconv.Atoi(port)
	return n
}

// topicNames returns the n topic names of a scenario: bench.<scenario>.t<i>.
func topicNames(scenario string, n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = "bench." + scenario + ".t" + strconv.Itoa(i)
	}
	return names
}
