package bench

import (
	"context"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tickfan/tickfan/server"
)

// cutProxy forwards TCP connections to a server and can cut a share of
// them with a reset (SO_LINGER 0), as a network that drops flows does.
type cutProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	flows map[*net.TCPConn]*net.TCPConn // client side -> server side
	cuts  int
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, flows: map[*net.TCPConn]*net.TCPConn{}}
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.cut(1)
	})
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		cc, sc := c.(*net.TCPConn), s.(*net.TCPConn)
		p.mu.Lock()
		p.flows[cc] = sc
		p.mu.Unlock()
		go func() {
			_, _ = io.Copy(sc, cc)
			sc.Close()
		}()
		go func() {
			_, _ = io.Copy(cc, sc)
			cc.Close()
			p.mu.Lock()
			delete(p.flows, cc)
			p.mu.Unlock()
		}()
	}
}

// cut resets each flow with probability share, on both sides.
func (p *cutProxy) cut(share float64) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for cc, sc := range p.flows {
		if rand.Float64() >= share {
			continue
		}
		_ = cc.SetLinger(0)
		_ = sc.SetLinger(0)
		cc.Close()
		sc.Close()
		delete(p.flows, cc)
		n++
	}
	p.cuts += n
	return n
}

// TestSoakRecoversFromCuts runs the soak scenario through a proxy that
// resets a third of the flows (subscribers and publisher alike) twice a
// second in its middle phase: every subscriber must come back with since,
// and the books must balance with nothing lost or repeated.
func TestSoakRecoversFromCuts(t *testing.T) {
	cfg := testServer(t, func(c *server.Config) { c.HistorySize = 10000 })
	_, wsPort, _ := net.SplitHostPort(strings.TrimPrefix(strings.TrimSuffix(cfg.WSURL, "/ws"), "ws://"))
	wsProxy := newCutProxy(t, "127.0.0.1:"+wsPort)
	tcpProxy := newCutProxy(t, cfg.TCPAddr)
	cfg.WSURL = "ws://" + wsProxy.addr() + "/ws"
	cfg.TCPAddr = tcpProxy.addr()
	cfg.Scenario = "soak"
	cfg.Conns = 12
	cfg.Rate = 100
	cfg.SoakPhases = []SoakPhase{{"clean", time.Second}, {"cuts", 3 * time.Second}, {"calm", time.Second}}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// Cut from when the run's phases begin; the subscribers are
		// subscribed by then, so that is soon after the start.
		sleepUntil(ctx, time.Now().Add(1500*time.Millisecond))
		for i := 0; i < 6 && ctx.Err() == nil; i++ {
			wsProxy.cut(0.34)
			tcpProxy.cut(0.34)
			sleepUntil(ctx, time.Now().Add(500*time.Millisecond))
		}
	}()
	rs := runOne(t, *cfg)
	if len(rs) != 1 || rs[0].Soak == nil {
		t.Fatalf("want one soak result, got %+v", rs)
	}
	f := rs[0].Soak
	t.Logf("cuts ws %d tcp %d; %+v", wsProxy.cuts, tcpProxy.cuts, *f)
	if !f.OK || len(f.Violations) > 0 {
		t.Fatalf("violations: %q", f.Violations)
	}
	if f.Reconnects == 0 || f.Recovered == 0 {
		t.Errorf("reconnects %d, recovered %d: the cuts should have made subscribers come back with since", f.Reconnects, f.Recovered)
	}
	if f.Lost != 0 || f.Dups != 0 || f.Delivered != f.Expected || f.Delivered == 0 {
		t.Errorf("lost %d dups %d delivered %d expected %d", f.Lost, f.Dups, f.Delivered, f.Expected)
	}
	if f.PubAcked == 0 || len(f.Phases) != 3 {
		t.Errorf("acked %d, %d phases", f.PubAcked, len(f.Phases))
	}
	if f.CaughtUpS < 0 {
		t.Errorf("not caught up")
	}
}

// TestSoakAccountsResets gives the server a history too short to
// recover a subscriber that stays away: a cut subscriber then gets rec
// false, a reset and a snapshot, which must be accounted as passed over,
// not lost.
func TestSoakAccountsResets(t *testing.T) {
	cfg := testServer(t, func(c *server.Config) { c.HistorySize = 5 })
	wsProxy := newCutProxy(t, strings.TrimSuffix(strings.TrimPrefix(cfg.WSURL, "ws://"), "/ws"))
	cfg.WSURL = "ws://" + wsProxy.addr() + "/ws"
	cfg.Scenario = "soak"
	cfg.Conns = 6
	cfg.Rate = 200
	cfg.SoakPhases = []SoakPhase{{"cuts", 3 * time.Second}, {"calm", time.Second}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		sleepUntil(ctx, time.Now().Add(1500*time.Millisecond))
		for i := 0; i < 4 && ctx.Err() == nil; i++ {
			wsProxy.cut(1)
			sleepUntil(ctx, time.Now().Add(400*time.Millisecond))
		}
	}()
	rs := runOne(t, *cfg)
	f := rs[0].Soak
	t.Logf("%+v", *f)
	if !f.OK {
		t.Fatalf("violations: %q", f.Violations)
	}
	if f.Reconnects == 0 {
		t.Errorf("no reconnects")
	}
	if f.NotRecovered == 0 || f.Resets == 0 || f.ResetSkipped <= 0 {
		t.Errorf("not recovered %d, resets %d, passed over %d: a history of 5 should have reset the cut subscribers", f.NotRecovered, f.Resets, f.ResetSkipped)
	}
	if f.Lost != 0 || f.Dups != 0 || f.Delivered != f.Expected {
		t.Errorf("lost %d dups %d delivered %d expected %d", f.Lost, f.Dups, f.Delivered, f.Expected)
	}
}

func TestParseSoakPhases(t *testing.T) {
	ps, err := ParseSoakPhases("clean:10s, weak:40s,calm:1m")
	if err != nil || len(ps) != 3 || ps[1] != (SoakPhase{"weak", 40 * time.Second}) || ps[2].Duration != time.Minute {
		t.Fatalf("%v %v", ps, err)
	}
	for _, bad := range []string{"", "clean", "clean:", ":10s", "clean:-1s", "clean:10s,"} {
		if _, err := ParseSoakPhases(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
