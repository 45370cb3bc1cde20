package topic

import (
	"fmt"
	"testing"
)

func pubSeq(seq uint64) *Publication { return &Publication{Topic: "h", Seq: seq} }

// checkHistory asserts h holds exactly the seqs lo..hi (lo > hi: nothing).
func checkHistory(t *testing.T, h *history, lo, hi uint64) {
	t.Helper()
	wantN := 0
	if lo <= hi {
		wantN = int(hi - lo + 1)
	}
	if h.n != wantN {
		t.Fatalf("n = %d, want %d (held %d..%d)", h.n, wantN, lo, hi)
	}
	if h.limit > 0 && len(h.buf) > h.limit {
		t.Fatalf("buffer of %d slots exceeds the limit %d", len(h.buf), h.limit)
	}
	wantFirst := uint64(0)
	if wantN > 0 {
		wantFirst = lo
	}
	if got := h.first(); got != wantFirst {
		t.Fatalf("first() = %d, want %d", got, wantFirst)
	}
	// Every range around the held one, including the edges and empty ranges.
	start := uint64(1)
	if lo > 3 {
		start = lo - 2
	}
	end := hi + 2
	for from := start; from <= end; from++ {
		for to := from - 1; to <= end; to++ {
			want := from > to || wantN > 0 && from >= lo && to <= hi
			if got := h.holds(from, to); got != want {
				t.Fatalf("holds(%d, %d) = %v, want %v (held %d..%d)", from, to, got, want, lo, hi)
			}
			if !want {
				continue
			}
			got := h.appendRange(nil, from, to)
			if from > to {
				if len(got) != 0 {
					t.Fatalf("appendRange(%d, %d) = %d entries, want none", from, to, len(got))
				}
				continue
			}
			if len(got) != int(to-from+1) {
				t.Fatalf("appendRange(%d, %d) = %d entries, want %d", from, to, len(got), to-from+1)
			}
			for i, p := range got {
				if p.Seq != from+uint64(i) {
					t.Fatalf("appendRange(%d, %d)[%d].Seq = %d, want %d", from, to, i, p.Seq, from+uint64(i))
				}
			}
		}
	}
}

func TestHistoryGrowAndWrap(t *testing.T) {
	for _, limit := range []int{1, 2, 3, 7, 8, 9, 16, 17, 100} {
		t.Run(fmt.Sprint("limit ", limit), func(t *testing.T) {
			h := history{limit: limit}
			checkHistory(t, &h, 1, 0)
			// Well past the limit, so the ring wraps several times.
			for seq := uint64(1); seq <= uint64(3*limit+5); seq++ {
				h.push(pubSeq(seq))
				lo := uint64(1)
				if seq > uint64(limit) {
					lo = seq - uint64(limit) + 1
				}
				checkHistory(t, &h, lo, seq)
			}
			if len(h.buf) != limit {
				t.Fatalf("full ring has %d slots, want %d", len(h.buf), limit)
			}
		})
	}
}

// The ring grows on demand: 8 slots first, doubling, capped at the limit.
func TestHistoryGrowsOnDemand(t *testing.T) {
	h := history{limit: 20}
	if len(h.buf) != 0 {
		t.Fatalf("empty history has %d slots", len(h.buf))
	}
	wantSlots := []int{8, 8, 8, 8, 8, 8, 8, 8, 16, 16, 16, 16, 16, 16, 16, 16, 20, 20, 20, 20, 20, 20}
	for i, want := range wantSlots {
		h.push(pubSeq(uint64(i + 1)))
		if len(h.buf) != want {
			t.Fatalf("after %d pushes: %d slots, want %d", i+1, len(h.buf), want)
		}
	}
}

func TestHistoryKeepsNothing(t *testing.T) {
	for _, limit := range []int{0, -1, -1000} {
		h := history{limit: limit}
		for seq := uint64(1); seq <= 5; seq++ {
			h.push(pubSeq(seq))
		}
		if h.n != 0 || len(h.buf) != 0 {
			t.Fatalf("limit %d: n = %d, %d slots; want nothing kept", limit, h.n, len(h.buf))
		}
		if h.first() != 0 {
			t.Fatalf("limit %d: first() = %d, want 0", limit, h.first())
		}
		if h.holds(5, 5) || h.holds(1, 5) {
			t.Fatalf("limit %d: holds a range though it keeps nothing", limit)
		}
		if !h.holds(6, 5) {
			t.Fatalf("limit %d: the empty range 6..5 is not held", limit)
		}
	}
}

func TestHistoryAppendRangeAppends(t *testing.T) {
	h := history{limit: 4}
	for seq := uint64(1); seq <= 6; seq++ { // holds 3..6, wrapped
		h.push(pubSeq(seq))
	}
	head := pubSeq(99)
	got := h.appendRange([]*Publication{head}, 4, 6)
	if len(got) != 4 || got[0] != head || got[1].Seq != 4 || got[3].Seq != 6 {
		t.Fatalf("appendRange onto one entry: %v", seqs(got))
	}
}

func seqs(ps []*Publication) []uint64 {
	out := make([]uint64, len(ps))
	for i, p := range ps {
		out[i] = p.Seq
	}
	return out
}
