package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/tickfan/tickfan/internal/redistest"
)

// Sizes of TestRedisHerd.
const (
	herdClients = 10_000
	herdTopics  = 100
	herdGroup   = 5 // topics per client; client i holds group i % (herdTopics/herdGroup)
	herdDialers = 64
	herdReaders = 32
	// herdWait bounds each message a herd client waits for: ten thousand
	// clients are answered by a few event loops, one after another.
	herdWait = 30 * time.Second
)

// TestRedisHerd: 10,000 clients come back at once with their positions to
// a node that no longer follows their 100 topics (say, after a restart).
// Each topic is read from Redis once, not once per client: the node
// coalesces the reads, and subscribes the channels in few commands. Every
// client gets rec true and exactly the publication it missed of each of
// its topics.
//
// The node runs in a process of its own: 10,000 client sockets here and
// 10,000 server sockets there stay under this machine's limit of 20,000
// open files per process.
func TestRedisHerd(t *testing.T) {
	// Not parallel: ten thousand sockets, and the machine to themselves.
	raiseFileLimit(t, herdClients+1000)
	r := redistest.Start(t)
	p := startLogged(t, "--redis", r.Addr, "--redis-linger", "100ms",
		"--max-conns-per-ip", "-1", "--conn-rate-per-ip", "-1", "--heartbeat", "10m", "--idle-timeout", "20m")
	groups := herdTopics / herdGroup
	topicOf := func(g, k int) string { return fmt.Sprintf("herd.%d.%d", g, k) }
	groupTopics := func(g int) []string {
		out := make([]string, herdGroup)
		for k := range out {
			out[k] = topicOf(g, k)
		}
		return out
	}

	// Three publications of each topic, over HTTP on the node itself
	// (publishing does not make a node follow a topic).
	publishAll := func(round int) map[string]pos {
		var items []map[string]any
		var names []string
		for g := range groups {
			for _, name := range groupTopics(g) {
				items = append(items, item(name, round, false))
				names = append(names, name)
			}
		}
		res := httpPublishBatch(t, p, items)
		at := make(map[string]pos, len(names))
		for i, name := range names {
			at[name] = res[i]
		}
		return at
	}
	publishAll(1)
	publishAll(2)
	held := publishAll(3)

	// The clients subscribe and hold their positions: s 3 of each topic.
	clients := dialHerd(t, p.tcp)
	subs := make([][]byte, groups)
	for g := range groups {
		subs[g] = herdCmd(t, map[string]any{"op": "sub", "id": 1, "topics": groupTopics(g)})
	}
	herdEach(t, clients, func(i int, c *client) error {
		g := i % groups
		if err := c.w.(*tcpWire).writeRaw(subs[g]); err != nil {
			return err
		}
		m, err := recvCached(c)
		if err != nil {
			return err
		}
		if err := checkReply(m, 1); err != nil {
			return err
		}
		res, _ := m["res"].(map[string]any)
		for _, name := range groupTopics(g) {
			got, err := asPos(res[name], "rec")
			if err != nil || got != held[name] || res[name].(map[string]any)["rec"] != false {
				return fmt.Errorf("sub → %s, want %s rec false at %+v", m, name, held[name])
			}
		}
		return nil
	})
	for _, c := range clients {
		c.close()
	}
	// Gone: once the node has let the topics go (--redis-linger), it
	// knows nothing of them; one more publication of each meanwhile.
	pollUntil(t, "the node lets the topics go", func() (bool, string) {
		n, err := p.tryMetric("tickfan_redis_topics_followed")
		return err == nil && n == 0, fmt.Sprintf("tickfan_redis_topics_followed %v (%v)", n, err)
	})
	missed := publishAll(4)

	// The herd: every client connected, then all subs with since (and a
	// ping after each) sent at once, then every answer read.
	clients = dialHerd(t, p.tcp)
	r.ResetStats(t)
	repairs := p.metric(t, "tickfan_redis_repairs_total")
	readTopics := p.metric(t, "tickfan_redis_read_topics_total")
	connects := p.metric(t, "tickfan_redis_connects_total")
	for g := range groups {
		since := map[string]any{}
		for _, name := range groupTopics(g) {
			since[name] = held[name].since()
		}
		subs[g] = append(herdCmd(t, map[string]any{"op": "sub", "id": 2, "topics": groupTopics(g), "since": since}),
			herdCmd(t, map[string]any{"op": "ping", "id": 3})...)
	}
	for i, c := range clients {
		if err := c.w.(*tcpWire).writeRaw(subs[i%groups]); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
	}
	herdEach(t, clients, func(i int, c *client) error {
		g := i % groups
		m, err := recvCached(c)
		if err != nil {
			return err
		}
		if err := checkReply(m, 2); err != nil {
			return err
		}
		res, _ := m["res"].(map[string]any)
		for _, name := range groupTopics(g) {
			got, err := asPos(res[name], "rec")
			if rec, _ := res[name].(map[string]any)["rec"].(bool); err != nil || !rec || got != missed[name] {
				return fmt.Errorf("sub since %+v → %s, want %s rec true at %+v", held[name], show(res[name]), name, missed[name])
			}
		}
		left := map[string]bool{}
		for _, name := range groupTopics(g) {
			left[name] = true
		}
		for {
			m, err := recvCached(c)
			if err != nil {
				return err
			}
			if _, isReply := m["id"]; isReply {
				if err := checkReply(m, 3); err != nil {
					return err
				}
				if len(left) != 0 {
					return fmt.Errorf("ping answered before the missed publications of %v", left)
				}
				return nil
			}
			pub, err := asPub(m)
			if err != nil {
				return err
			}
			if !left[pub.T] {
				return fmt.Errorf("publication %s: not missed, or a second time", m)
			}
			if err := expectPub(m, pub.T, missed[pub.T].S, 4, false); err != nil {
				return err
			}
			delete(left, pub.T)
		}
	})

	stats := r.CommandStats(t)
	repairs = p.metric(t, "tickfan_redis_repairs_total") - repairs
	readTopics = p.metric(t, "tickfan_redis_read_topics_total") - readTopics
	connects = p.metric(t, "tickfan_redis_connects_total") - connects
	t.Logf("%d clients on %d topics came back: Redis counted %d evalsha (hmget %d, xrange %d) and %d subscribe; the node read %v topics, made %v repairs and %v subscription connections",
		herdClients, herdTopics, stats["evalsha"], stats["hmget"], stats["xrange"], stats["subscribe"], readTopics, repairs, connects)
	// Each topic is read once, when the node follows it again. The margin
	// over that is the repairs the node counts (tickfan_redis_repairs_total),
	// each one read of one topic again: a publication that came with a gap
	// (none here: nothing is published during the herd), or every followed
	// topic after its subscription connection was made again (a probe late
	// on a busy machine). In the usual run there are none and the margin is
	// 0; a node that read per client would need thousands.
	most := int64(herdTopics) + int64(repairs)
	if stats["evalsha"] > most || stats["xrange"] > most || stats["evalsha"] < herdTopics {
		t.Errorf("%d clients on %d topics cost %d reads (evalsha; xrange %d), want %d to %d: one per topic, plus %v repairs",
			herdClients, herdTopics, stats["evalsha"], stats["xrange"], herdTopics, most, repairs)
	}
	// The topics of one sub are subscribed in one command, and whatever
	// gathers while a SUBSCRIBE is out goes in the next one: at most one
	// command per group of topics (plus two for each subscription
	// connection made again: its probe channel and its topics).
	if most := int64(groups) + 2*int64(connects); stats["subscribe"] > most {
		t.Errorf("%d SUBSCRIBE commands for %d clients in %d groups of topics, want at most %d", stats["subscribe"], herdClients, groups, most)
	}
}

// raiseFileLimit raises the soft limit of open files to the hard limit
// when it is below need, and fails the test when even that is too low.
func raiseFileLimit(t *testing.T, need uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur >= need {
		return
	}
	if lim.Max < need {
		t.Fatalf("open-file limit %d (hard), this test needs %d", lim.Max, need)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("raising the open-file limit to %d: %v", lim.Max, err)
	}
}

// dialHerd opens herdClients TCP connections to addr, herdDialers at a
// time; they are closed when the test ends.
func dialHerd(t *testing.T, addr string) []*client {
	t.Helper()
	clients := make([]*client, herdClients)
	t.Cleanup(func() {
		for _, c := range clients {
			if c != nil {
				c.close()
			}
		}
	})
	var next sync.Mutex
	i := 0
	errs := make(chan error, herdDialers)
	var wg sync.WaitGroup
	for range herdDialers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				next.Lock()
				k := i
				i++
				next.Unlock()
				if k >= herdClients {
					return
				}
				nc, err := net.DialTimeout("tcp", addr, herdWait)
				if err != nil {
					errs <- fmt.Errorf("client %d: %w", k, err)
					return
				}
				clients[k] = &client{name: fmt.Sprintf("tcp %d", k), w: &tcpWire{c: nc, r: bufio.NewReader(nc)}, f: msgpackFormat}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return clients
}

// herdEach runs f for every client, herdReaders at a time, and fails the
// test with the first error.
func herdEach(t *testing.T, clients []*client, f func(i int, c *client) error) {
	t.Helper()
	errs := make(chan error, herdReaders)
	var wg sync.WaitGroup
	for w := range herdReaders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(clients); i += herdReaders {
				if err := f(i, clients[i]); err != nil {
					errs <- fmt.Errorf("%s: %w", clients[i].name, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// herdCmd encodes a command as one TCP frame.
func herdCmd(t *testing.T, m map[string]any) []byte {
	t.Helper()
	body, err := msgpack.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte{byte(len(body) >> 24), byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, body...)
}

// writeRaw writes bytes already framed.
func (w *tcpWire) writeRaw(b []byte) error {
	_ = w.c.SetWriteDeadline(time.Now().Add(readTimeout))
	_, err := w.c.Write(b)
	return err
}

// httpPublishBatch publishes a batch on the process's HTTP API and
// returns the positions.
func httpPublishBatch(t *testing.T, p *proc, items []map[string]any) []pos {
	t.Helper()
	ps, err := (&node{base: p.httpURL}).tryPublishBatch(items)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// herdFrames holds the messages already decoded, by their bytes: the
// clients of one group of topics receive the same frames, which are
// decoded once (the race detector makes decoding the test's main cost).
var herdFrames sync.Map

// recvCached is recvWithin(herdWait) through herdFrames. The message it
// returns is shared: it must not be changed.
func recvCached(c *client) (msg, error) {
	b, err := c.w.read(herdWait)
	if err != nil {
		return nil, fmt.Errorf("%s read: %w", c.name, err)
	}
	if m, ok := herdFrames.Load(string(b)); ok {
		return m.(msg), nil
	}
	v, err := c.f.unmarshal(b)
	if err != nil {
		return nil, fmt.Errorf("%s: undecodable message: %w", c.name, err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: message is not a map: %s", c.name, show(v))
	}
	herdFrames.Store(string(b), msg(m))
	return msg(m), nil
}

// startLogged is startProc that keeps the process's log: a start that
// fails shows it, and so does a test that fails later.
func startLogged(t *testing.T, flags ...string) *proc {
	t.Helper()
	args := append([]string{"serve", "--ws-addr", "127.0.0.1:0", "--tcp-addr", "127.0.0.1:0",
		"--http-addr", "127.0.0.1:0", "--api-key", apiKey}, flags...)
	if engine != "" {
		args = append(args, "--engine", engine)
	}
	cmd := exec.Command(tickfanBinary(t), args...)
	var log lockedBuffer
	cmd.Stderr = &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("tickfan serve log:\n%s", log.tail(40))
		}
	})
	deadline := time.Now().Add(redisWait)
	for {
		if m := servingLine.FindStringSubmatch(log.String()); m != nil {
			return &proc{cmd: cmd, ws: m[1], tcp: m[2], httpURL: m[3]}
		}
		select {
		case <-exited:
			t.Fatalf("tickfan serve exited (%v) before serving:\n%s", waitErr, log.tail(40))
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("tickfan serve did not report its addresses within %v:\n%s", redisWait, log.tail(40))
		}
	}
}

// lockedBuffer is a bytes.Buffer safe for a process's writes and the
// test's reads, bounded to its last 1 MiB.
type lockedBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > 1<<20 {
		b.buf = append([]byte(nil), b.buf[len(b.buf)-1<<19:]...)
	}
	return len(p), nil
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// tail returns the last n lines.
func (b *lockedBuffer) tail(n int) string {
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
