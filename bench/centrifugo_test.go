package bench

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestParseCentrifugoFrame(t *testing.T) {
	frame := `{"push":{"channel":"bench.fanout.t0","pub":{"data":[10,20,"xx"],"offset":7}}}` + "\n" +
		`{}` + "\n" +
		`{"push":{"channel":"bench.fanout.t1","pub":{"data":{"offset":1},"offset":8}}}` + "\n" +
		// Another field order than Centrifugo's: the slow path reads it.
		`{"push":{"pub":{"offset":9,"data":[30,40,"y"]},"channel":"bench.fanout.t0"}}` + "\n" +
		`{"id":2,"subscribe":{"offset":5,"epoch":"abcd"}}` + "\n" +
		`{"id":3,"error":{"code":103,"message":"permission denied"}}` + "\n" +
		`{"push":{"channel":"c","join":{"info":{}}}}`
	var got []cfMessage
	err := parseCentrifugoFrame([]byte(frame), func(m *cfMessage) {
		c := *m
		c.channel, c.data = append([]byte(nil), m.channel...), append([]byte(nil), m.data...)
		got = append(got, c)
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		kind    cfKind
		channel string
		data    string
		offset  uint64
		id      uint64
		errMsg  string
	}{
		{cfPub, "bench.fanout.t0", `[10,20,"xx"]`, 7, 0, ""},
		{cfPing, "", "", 0, 0, ""},
		{cfPub, "bench.fanout.t1", `{"offset":1}`, 8, 0, ""},
		{cfPub, "bench.fanout.t0", `[30,40,"y"]`, 9, 0, ""},
		{cfReply, "", "", 5, 2, ""},
		{cfReply, "", "", 0, 3, "103 permission denied"},
		{cfOther, "", "", 0, 0, ""},
	}
	if len(got) != len(want) {
		t.Fatalf("%d messages, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.kind != w.kind || string(g.channel) != w.channel || string(g.data) != w.data || g.offset != w.offset || g.id != w.id || g.errMsg != w.errMsg {
			t.Errorf("message %d: %+v, want %+v", i, g, w)
		}
	}
	if !got[4].hasOffset || got[4].epoch != "abcd" {
		t.Errorf("subscribe reply %+v: want offset 5 of epoch abcd", got[4])
	}
	if err := parseCentrifugoFrame([]byte("{\"push\":"), func(*cfMessage) {}); err == nil {
		t.Errorf("a broken message parsed")
	}
}

// TestCentrifugoFrameAnswersPings checks that a subscriber answers each
// ping of a frame, and accounts the pushes around them.
func TestCentrifugoFrameAnswersPings(t *testing.T) {
	p, err := newWSPool("ws://unused", dialectCentrifugo, newClock(), 1, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer p.stop()
	p.add(1, []string{"bench.fanout.t0"})
	p.setWindow(0, 1<<62)
	s := p.subs[0]
	frame := "{}\n" +
		`{"push":{"channel":"bench.fanout.t0","pub":{"data":[1000,2000,"x"],"offset":1}}}` + "\n" +
		`{"push":{"channel":"bench.fanout.t0","pub":{"data":[1000,2000,"x"],"offset":2}}}` + "\n" +
		`{"push":{"channel":"bench.fanout.t0","pub":{"data":[1000,2000,"x"],"offset":4}}}` + "\n{}"
	out, err := s.frame([]byte(frame), 5000, nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "{}\n{}" {
		t.Errorf("answer %q, want two pongs", out)
	}
	due, sent, received, _, _ := p.windowFigures()
	tl := tallyOf(p)
	if received != 3 || tl.Delivered != 3 || tl.Missing != 1 || due.Max() != 4 || sent.Max() != 3 {
		t.Errorf("received %d, tally %+v, due max %d µs, sent max %d µs", received, tl, due.Max(), sent.Max())
	}
}

// fakeCentrifugo speaks enough of Centrifugo v5 for the bench: anonymous
// connect and subscribe, publish by HTTP API with X-API-Key, pushes
// newline-joined when several are queued (as Centrifugo's writer does),
// and a ping after each subscribe and every 50 pushes, whose pongs it counts.
type fakeCentrifugo struct {
	mu      sync.Mutex
	offsets map[string]uint64
	subs    map[string][]*fakeClient
	pongs   atomic.Int64
}

type fakeClient struct {
	mu    sync.Mutex
	queue []string
	kick  chan struct{}
	sent  int
}

func (f *fakeCentrifugo) handler(t *testing.T) http.Handler {
	up := websocket.Upgrader{}
	mux := http.NewServeMux()
	mux.HandleFunc("/connection/websocket", func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		fc := &fakeClient{kick: make(chan struct{}, 1)}
		done := make(chan struct{})
		defer close(done)
		go func() { // the writer: everything queued in one frame
			for {
				select {
				case <-done:
					return
				case <-fc.kick:
				}
				fc.mu.Lock()
				msgs := fc.queue
				fc.queue = nil
				fc.mu.Unlock()
				if len(msgs) > 0 {
					if c.WriteMessage(websocket.TextMessage, []byte(strings.Join(msgs, "\n"))) != nil {
						return
					}
				}
			}
		}()
		for {
			_, b, err := c.ReadMessage()
			if err != nil {
				return
			}
			for _, line := range strings.Split(string(b), "\n") {
				var cmd struct {
					ID        int `json:"id"`
					Subscribe *struct {
						Channel string `json:"channel"`
					} `json:"subscribe"`
				}
				if line == "{}" {
					f.pongs.Add(1)
					continue
				}
				if err := json.Unmarshal([]byte(line), &cmd); err != nil {
					t.Errorf("fake centrifugo: %q: %v", line, err)
					return
				}
				switch {
				case cmd.ID == 1:
					fc.push(`{"id":1,"connect":{"client":"c","version":"5.4.9","ping":25,"pong":true}}`)
				case cmd.Subscribe != nil:
					f.mu.Lock()
					f.subs[cmd.Subscribe.Channel] = append(f.subs[cmd.Subscribe.Channel], fc)
					f.mu.Unlock()
					fc.push(`{"id":` + strconv.Itoa(cmd.ID) + `,"subscribe":{}}`)
					fc.push(`{}`)
				}
			}
		}
	})
	mux.HandleFunc("POST /api/publish", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-API-Key") != "cf-key" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var body struct {
			Channel string          `json:"channel"`
			Data    json.RawMessage `json:"data"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Channel == "" || len(body.Data) == 0 {
			io.WriteString(w, `{"error":{"code":107,"message":"bad request"}}`)
			return
		}
		f.mu.Lock()
		f.offsets[body.Channel]++
		off := f.offsets[body.Channel]
		subs := f.subs[body.Channel]
		push := `{"push":{"channel":"` + body.Channel + `","pub":{"data":` + string(body.Data) + `,"offset":` + strconv.FormatUint(off, 10) + `}}}`
		for _, fc := range subs {
			fc.push(push)
			fc.sent++
			if fc.sent%50 == 0 {
				fc.push(`{}`)
			}
		}
		f.mu.Unlock()
		io.WriteString(w, `{"result":{"offset":`+strconv.FormatUint(off, 10)+`,"epoch":"abcd"}}`)
	})
	return mux
}

func (fc *fakeClient) push(msg string) {
	fc.mu.Lock()
	fc.queue = append(fc.queue, msg)
	fc.mu.Unlock()
	select {
	case fc.kick <- struct{}{}:
	default:
	}
}

func TestCentrifugoTarget(t *testing.T) {
	f := &fakeCentrifugo{offsets: map[string]uint64{}, subs: map[string][]*fakeClient{}}
	srv := httptest.NewServer(f.handler(t))
	t.Cleanup(srv.Close)
	var log io.Writer = io.Discard
	if testing.Verbose() {
		log = os.Stderr
	}
	cfg := Config{
		Scenario: "fanout", Target: TargetCentrifugo, CentrifugoAPIKey: "cf-key",
		WSURL:   "ws" + strings.TrimPrefix(srv.URL, "http") + "/connection/websocket",
		HTTPURL: srv.URL, PID: os.Getpid(), Label: "test", Log: log,
		Conns: 20, Topics: 3, Rate: 50, Size: 200, PubInflight: 8,
		Duration: time.Second, Warmup: 200 * time.Millisecond, Drain: 3 * time.Second,
	}
	v := runVersusOne(t, cfg)
	checkVersusRun(t, v)
	if v.Target != TargetCentrifugo || v.Expected < 900 || v.Expected > 1100 {
		t.Errorf("target %q, expected %d deliveries, want about 1000", v.Target, v.Expected)
	}
	if n := f.pongs.Load(); n < 20 {
		t.Errorf("%d pongs for at least 20 pings", n)
	}
}
