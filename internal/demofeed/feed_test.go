package demofeed

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/tickfan/tickfan/topic"
)

// TestBookUpdatesRebuildSnapshots applies each update to the book built from
// the last snapshot and checks after every step that it is the market's true
// book, and that each snapshot is that book: a subscriber following
// snapshot + updates holds the true book.
func TestBookUpdatesRebuildSnapshots(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	m := NewMarket("BTCUSDT", 65000, rng)
	var state map[bool]map[float64]float64
	now := time.Unix(1_700_000_000, 0)
	snaps := 0
	for n := 0; n < 1000; n++ {
		reqs := m.Step(nil, now.Add(time.Duration(n)*100*time.Millisecond), n%50 == 0, n%5 == 0)
		for _, r := range reqs {
			if r.Topic != "book.BTCUSDT" {
				continue
			}
			var b book
			if err := json.Unmarshal(r.Data, &b); err != nil {
				t.Fatal(err)
			}
			if r.Snap {
				assertBook(t, n, map[bool]map[float64]float64{true: m.bids, false: m.asks}, b)
				snaps++
				state = map[bool]map[float64]float64{true: {}, false: {}}
			}
			for _, side := range []bool{true, false} {
				lv := b.A
				if side {
					lv = b.B
				}
				for _, l := range lv {
					if l[1] == 0 {
						delete(state[side], l[0])
					} else {
						state[side][l[0]] = l[1]
					}
				}
			}
			assertBook(t, n, state, book{B: levels(m.bids, true), A: levels(m.asks, false)})
			if len(state[true]) != Levels || len(state[false]) != Levels {
				t.Fatalf("step %d: book is %d x %d levels, want %d each", n, len(state[true]), len(state[false]), Levels)
			}
			if bb, ba := best(state[true], true), best(state[false], false); bb >= ba {
				t.Fatalf("step %d: crossed book: bid %v >= ask %v", n, bb, ba)
			}
		}
	}
	if snaps != 20 {
		t.Fatalf("saw %d snapshots, want 20", snaps)
	}
}

func assertBook(t *testing.T, n int, state map[bool]map[float64]float64, snap book) {
	t.Helper()
	if len(snap.B) != len(state[true]) || len(snap.A) != len(state[false]) {
		t.Fatalf("step %d: snapshot %dx%d levels, rebuilt %dx%d", n, len(snap.B), len(snap.A), len(state[true]), len(state[false]))
	}
	for _, l := range snap.B {
		if state[true][l[0]] != l[1] {
			t.Fatalf("step %d: bid %v: snapshot %v, rebuilt %v", n, l[0], l[1], state[true][l[0]])
		}
	}
	for _, l := range snap.A {
		if state[false][l[0]] != l[1] {
			t.Fatalf("step %d: ask %v: snapshot %v, rebuilt %v", n, l[0], l[1], state[false][l[0]])
		}
	}
}

// TestRunPublishesEveryKind runs the feed briefly and checks each topic kind
// appears for each symbol with valid JSON and valid topic names.
func TestRunPublishesEveryKind(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	seen := map[string]int{}
	err := Run(ctx, Config{Tick: 5 * time.Millisecond, Seed: 7}, func(_ context.Context, reqs []topic.PublishRequest) ([]topic.Position, error) {
		for _, r := range reqs {
			if err := topic.ValidName(r.Topic); err != nil {
				t.Errorf("bad topic: %v", err)
			}
			if !json.Valid(r.Data) {
				t.Errorf("%s: invalid JSON %q", r.Topic, r.Data)
			}
			seen[r.Topic]++
		}
		return make([]topic.Position, len(reqs)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, sym := range []string{"BTCUSDT", "ETHUSDT", "SOLUSDT"} {
		for _, kind := range []string{"book.", "ticker.", "trade.", "kline.1m."} {
			if seen[kind+sym] == 0 {
				t.Errorf("no publication on %s%s (saw %v)", kind, sym, seen)
			}
		}
	}
	for name := range seen {
		if strings.Contains(name, "..") {
			t.Errorf("odd topic %q", name)
		}
	}
}
