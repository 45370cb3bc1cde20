package e2e

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/tickfan/tickfan/server"
)

// TestFanout publishes a few thousand publications of one topic
// concurrently, over HTTP batches and the pub command of every transport,
// to subscribers on every transport spread over two loops, and checks each
// subscriber gets all of them in seq order, without gap or duplicate, with
// the payload each publisher was told got that seq.
func TestFanout(t *testing.T) {
	t.Parallel()
	const (
		topic         = "fan.out"
		httpWorkers   = 2
		httpBatches   = 15
		batchSize     = 50
		pubsPerClient = 500
		subsPerTransp = 2
	)
	total := uint64(httpWorkers*httpBatches*batchSize + len(transports)*pubsPerClient)
	n := start(t, historySize(int(total)+100), func(c *server.Config) { c.Loops = 2 })

	type subscriber struct {
		c    *client
		got  []any // d by seq-1
		lags int
		err  error
	}
	var subs []*subscriber
	for _, tr := range transports {
		for range subsPerTransp {
			c := tr.dial(t, n)
			if r := c.sub1(t, topic, nil); r.S != 0 {
				t.Fatalf("sub → %+v, want s 0", r)
			}
			subs = append(subs, &subscriber{c: c})
		}
	}

	var readers sync.WaitGroup
	for _, s := range subs {
		readers.Go(func() {
			s.err = func() error {
				for last := uint64(0); last < total; {
					m, err := s.c.recv()
					if err != nil {
						return fmt.Errorf("after s %d of %d: %w", last, total, err)
					}
					switch m["op"] {
					case "lag":
						// Allowed for a slow reader; the topic must resume
						// from history without a gap (history holds all).
						s.lags++
						continue
					case "reset":
						return fmt.Errorf("after s %d: %s, but history holds every publication", last, m)
					}
					p, err := asPub(m)
					if err != nil {
						return err
					}
					if p.T != topic || p.S != last+1 || p.Snap {
						return fmt.Errorf("after s %d got %s, want the update of %s at s %d", last, m, topic, last+1)
					}
					last = p.S
					s.got = append(s.got, p.D)
				}
				return nil
			}()
		})
	}

	// Publishers: each records the seq it was given for each payload.
	var (
		mu      sync.Mutex
		bySeq   = make(map[uint64]any, total)
		epoch   string
		pubErrs []error
	)
	record := func(p pos, d any) error {
		mu.Lock()
		defer mu.Unlock()
		if epoch == "" {
			epoch = p.E
		}
		if p.E != epoch {
			return fmt.Errorf("epoch changed from %q to %q", epoch, p.E)
		}
		if prev, dup := bySeq[p.S]; dup {
			return fmt.Errorf("s %d given twice: %s and %s", p.S, show(prev), show(d))
		}
		bySeq[p.S] = normalize(d)
		return nil
	}
	fail := func(err error) {
		mu.Lock()
		pubErrs = append(pubErrs, err)
		mu.Unlock()
	}
	var pubs sync.WaitGroup
	for w := range httpWorkers {
		pubs.Go(func() {
			for b := range httpBatches {
				items := make([]map[string]any, batchSize)
				for i := range items {
					items[i] = item(topic, payload(fmt.Sprintf("http%d", w), b*batchSize+i), false)
				}
				ps, err := n.tryPublishBatch(items)
				if err != nil {
					fail(err)
					return
				}
				for i, p := range ps {
					if i > 0 && p.S <= ps[i-1].S {
						fail(fmt.Errorf("batch results not in order: %+v", ps))
						return
					}
					if err := record(p, items[i]["d"]); err != nil {
						fail(err)
						return
					}
				}
			}
		})
	}
	for _, tr := range transports {
		c := tr.dial(t, n)
		tag := "pub-" + tr.name
		// The writer pipelines every pub; the reader checks the replies,
		// which come in order.
		pubs.Go(func() {
			for i := range pubsPerClient {
				cmd := map[string]any{"op": "pub", "id": uint64(i + 1), "t": topic, "d": payload(tag, i)}
				if err := c.send(cmd); err != nil {
					fail(fmt.Errorf("%s pub %d: %w", tag, i, err))
					return
				}
			}
		})
		pubs.Go(func() {
			var prev uint64
			for i := range pubsPerClient {
				m, err := c.recv()
				if err != nil {
					fail(fmt.Errorf("%s reply %d: %w", tag, i, err))
					return
				}
				if err := checkReply(m, uint64(i+1)); err != nil {
					fail(fmt.Errorf("%s: %w", tag, err))
					return
				}
				p, err := asPos(m["res"])
				if err != nil {
					fail(fmt.Errorf("%s pub reply %s: %w", tag, m, err))
					return
				}
				if p.S <= prev {
					fail(fmt.Errorf("%s: pub replies s %d then %d: commands of one connection run in order", tag, prev, p.S))
					return
				}
				prev = p.S
				if err := record(p, payload(tag, i)); err != nil {
					fail(err)
					return
				}
			}
		})
	}
	pubs.Wait()
	if err := errors.Join(pubErrs...); err != nil {
		t.Fatal(err)
	}
	for s := uint64(1); s <= total; s++ {
		if _, ok := bySeq[s]; !ok {
			t.Fatalf("%d publications got seqs %d..: s %d was given to none", total, 1, s)
		}
	}
	readers.Wait()
	for i, s := range subs {
		if s.err != nil {
			t.Errorf("subscriber %d (%s): %v", i, s.c.name, s.err)
			continue
		}
		for j, d := range s.got {
			if want := bySeq[uint64(j+1)]; !reflect.DeepEqual(d, want) {
				t.Errorf("subscriber %d (%s): s %d carries %s, its publisher was told %s", i, s.c.name, j+1, show(d), show(want))
				break
			}
		}
		if s.lags > 0 {
			t.Logf("subscriber %d (%s) lagged %d times", i, s.c.name, s.lags)
		}
	}
}
