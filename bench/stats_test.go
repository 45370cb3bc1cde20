package bench

import (
	"math"
	"testing"
)

func TestTrackAccounting(t *testing.T) {
	tr := track{topic: "x", epoch: "e1", last: 10, started: true}
	for _, s := range []uint64{11, 12, 12, 15, 14, 16} {
		tr.pub(s)
	}
	// 11, 12, 15, 16 in order; 12 again and 14 (after 15) are duplicates;
	// 13 and 14 were jumped over when 15 came.
	if tr.delivered != 4 || tr.dups != 2 || tr.missing != 2 || tr.last != 16 {
		t.Errorf("delivered %d dups %d missing %d last %d; want 4 2 2 16", tr.delivered, tr.dups, tr.missing, tr.last)
	}
	if got := tr.outstanding(20); got != 4 {
		t.Errorf("outstanding up to 20: %d, want 4", got)
	}
	if got := tr.outstanding(16); got != 0 {
		t.Errorf("outstanding up to 16: %d, want 0", got)
	}

	// A reset in the same epoch skips to its seq: the skipped ones are
	// counted apart, and tracking goes on from there.
	tr.reset("e1", 30)
	if tr.resets != 1 || tr.resetSkipped != 14 || tr.last != 30 {
		t.Errorf("after reset: resets %d skipped %d last %d; want 1 14 30", tr.resets, tr.resetSkipped, tr.last)
	}
	tr.pub(31)
	if tr.missing != 2 || tr.delivered != 5 {
		t.Errorf("after reset and 31: missing %d delivered %d", tr.missing, tr.delivered)
	}
	// A new epoch starts its seqs again: nothing is skipped that we could count.
	tr.reset("e2", 3)
	tr.pub(4)
	if tr.resets != 2 || tr.resetSkipped != 14 || tr.dups != 2 || tr.last != 4 || tr.epoch != "e2" {
		t.Errorf("after new epoch: %+v", tr)
	}

	var s tally
	s.add(&tr)
	s.add(&track{delivered: 1, missing: 1, dups: 1, lags: 2})
	d := s.sub(tally{Delivered: 1})
	if d.Delivered != 6 || d.Missing != 3 || d.Dups != 3 || d.Resets != 2 || d.Lags != 2 {
		t.Errorf("tally %+v", d)
	}
}

func TestHistogram(t *testing.T) {
	h := newHistogram()
	for i := int64(1); i <= 1000; i++ {
		recordLatency(h, i*1000) // 1..1000 µs
	}
	recordLatency(h, -5)      // a clock step backwards: 0, not lost
	recordLatency(h, 120*1e9) // past the range: recorded as its top
	recordLatency(h, 999)     // under a µs
	if h.TotalCount() != 1003 {
		t.Fatalf("count %d", h.TotalCount())
	}
	s := summarize(h)
	near := func(got, want int64) bool { return math.Abs(float64(got-want)) <= float64(want)/500+1 }
	if !near(s.P50, 500) || !near(s.P90, 900) || !near(s.P99, 990) {
		t.Errorf("percentiles %+v", s)
	}
	if s.Max < histMaxUs*999/1000 {
		t.Errorf("max %d, want about %d", s.Max, histMaxUs)
	}

	d := distribution(h)
	if len(d) < 20 {
		t.Fatalf("%d points", len(d))
	}
	if d[0][0] != 0 || d[len(d)-1][0] != 100 || d[len(d)-1][1] != float64(s.Max) {
		t.Errorf("first %v last %v", d[0], d[len(d)-1])
	}
	for i := 1; i < len(d); i++ {
		if d[i][0] <= d[i-1][0] || d[i][1] < d[i-1][1] {
			t.Fatalf("points not increasing at %d: %v %v", i, d[i-1], d[i])
		}
	}
	// 1003 samples support three nines, not four.
	var has90, has999, has9999 bool
	for _, p := range d {
		has90 = has90 || p[0] == 90
		has999 = has999 || p[0] == 99.9
		has9999 = has9999 || p[0] == 99.99
	}
	if !has90 || !has999 || has9999 {
		t.Errorf("points %v", d)
	}
	if distribution(newHistogram()) != nil {
		t.Errorf("an empty histogram has points")
	}
}
