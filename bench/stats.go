package bench

import (
	"math"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are kept in µs from 1 µs to 60 s with 3 significant digits.
const (
	histMinUs = 1
	histMaxUs = int64(60 * time.Second / time.Microsecond)
	histSig   = 3
)

func newHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(histMinUs, histMaxUs, histSig)
}

// recordLatency records a latency given in ns; a value past the histogram's
// range is recorded as its maximum, so it is seen rather than dropped.
func recordLatency(h *hdrhistogram.Histogram, ns int64) {
	us := max(ns/1000, 0)
	if us > histMaxUs {
		us = histMaxUs
	}
	_ = h.RecordValue(us) // in range by construction
}

// track is the continuity of one topic on one subscriber connection:
// PROTOCOL.md promises each topic's publications in seq order with no gap,
// unless a reset comes first.
type track struct {
	topic string
	epoch string
	// last is the seq of the last publication held (the sub reply's s
	// before the first).
	last uint64
	// started is set once the sub reply gave the starting point.
	started bool

	delivered    int64 // in order, each seq once
	missing      int64 // seqs jumped over
	dups         int64 // seq at or below last
	resets       int64
	resetSkipped int64 // seqs a reset told us we will not get
	lags         int64
}

// pub accounts publication seq and reports whether it is new and in order
// (a delivery). A seq at or below the last one is a duplicate; a jump
// counts the seqs in between as missing.
func (t *track) pub(seq uint64) bool {
	if seq <= t.last {
		t.dups++
		return false
	}
	if seq > t.last+1 {
		t.missing += int64(seq - t.last - 1)
	}
	t.last = seq
	t.delivered++
	return true
}

// reset applies {"op":"reset","e":..,"s":..}: continuity is broken, the
// next publication follows s. The seqs between what we held and s are
// counted as skipped by the reset, not as missing: the server said so.
func (t *track) reset(epoch string, seq uint64) {
	t.resets++
	if epoch == t.epoch && seq > t.last {
		t.resetSkipped += int64(seq - t.last)
	}
	t.epoch, t.last, t.started = epoch, seq, true
}

// outstanding is how many publications up to lastPublished have not
// arrived: at the end of a run they count as missing.
func (t *track) outstanding(lastPublished uint64) int64 {
	if lastPublished > t.last {
		return int64(lastPublished - t.last)
	}
	return 0
}

// trackWalker is a pool of subscribers (pool, wsPool) whose tracks can be
// walked, each under its connection's lock.
type trackWalker interface{ eachTrack(f func(*track)) }

// tallyOf sums the continuity figures of every track of ts.
func tallyOf(ts trackWalker) tally {
	var t tally
	ts.eachTrack(t.add)
	return t
}

// outstandingOf counts the publications, up to lastPub of each topic,
// that have not reached the subscribers of ts.
func outstandingOf(ts trackWalker, lastPub map[string]uint64) int64 {
	var n int64
	ts.eachTrack(func(t *track) { n += t.outstanding(lastPub[t.topic]) })
	return n
}

// tally sums the continuity figures of many tracks.
type tally struct {
	Delivered, Missing, Dups, Resets, ResetSkipped, Lags int64
}

func (s *tally) add(t *track) {
	s.Delivered += t.delivered
	s.Missing += t.missing
	s.Dups += t.dups
	s.Resets += t.resets
	s.ResetSkipped += t.resetSkipped
	s.Lags += t.lags
}

func (s tally) sub(o tally) tally {
	return tally{s.Delivered - o.Delivered, s.Missing - o.Missing, s.Dups - o.Dups,
		s.Resets - o.Resets, s.ResetSkipped - o.ResetSkipped, s.Lags - o.Lags}
}

// LatencySummary is the headline of a latency histogram, in µs.
type LatencySummary struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean"`
	P50   int64   `json:"p50"`
	P90   int64   `json:"p90"`
	P99   int64   `json:"p99"`
	P999  int64   `json:"p99_9"`
	P9999 int64   `json:"p99_99"`
	Max   int64   `json:"max"`
}

func summarize(h *hdrhistogram.Histogram) LatencySummary {
	return LatencySummary{
		Count: h.TotalCount(),
		Mean:  math.Round(h.Mean()*10) / 10,
		P50:   h.ValueAtQuantile(50),
		P90:   h.ValueAtQuantile(90),
		P99:   h.ValueAtQuantile(99),
		P999:  h.ValueAtQuantile(99.9),
		P9999: h.ValueAtQuantile(99.99),
		Max:   h.Max(),
	}
}

// distribution returns [percentile, µs] points for a percentile plot on a
// "nines" axis: ten points a decade of 1-p (0, 20.6, 36.9, ... 90, ... 99,
// ... 99.9 ...), as deep as the sample count supports, then the maximum
// at 100.
func distribution(h *hdrhistogram.Histogram) [][2]float64 {
	n := h.TotalCount()
	if n == 0 {
		return nil
	}
	const perDecade = 10
	var pts [][2]float64
	for k := 0; ; k++ {
		nines := float64(k) / perDecade
		tail := math.Pow(10, -nines) // 1 - p
		if tail*float64(n) < 1 || nines > 6 {
			break
		}
		p := 100 * (1 - tail)
		p = math.Round(p*1e6) / 1e6
		pts = append(pts, [2]float64{p, float64(h.ValueAtQuantile(p))})
	}
	return append(pts, [2]float64{100, float64(h.Max())})
}
