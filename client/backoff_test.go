package client

import (
	"testing"
	"time"
)

// TestBackoffDelay checks the exponential growth, its cap, and the range
// of each jitter, with the random source at its two ends.
func TestBackoffDelay(t *testing.T) {
	lowest := func(int64) int64 { return 0 }
	highest := func(k int64) int64 { return k - 1 }
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	for _, tc := range []struct {
		jitter Jitter
		n      int
		lo, hi time.Duration
	}{
		{NoJitter, 0, 100 * time.Millisecond, 100 * time.Millisecond},
		{NoJitter, 1, 200 * time.Millisecond, 200 * time.Millisecond},
		{NoJitter, 3, 800 * time.Millisecond, 800 * time.Millisecond},
		{NoJitter, 4, time.Second, time.Second},
		{NoJitter, 1000, time.Second, time.Second},
		{FullJitter, 0, 0, 100 * time.Millisecond},
		{FullJitter, 2, 0, 400 * time.Millisecond},
		{FullJitter, 60, 0, time.Second},
		{EqualJitter, 0, 50 * time.Millisecond, 100 * time.Millisecond},
		{EqualJitter, 2, 200 * time.Millisecond, 400 * time.Millisecond},
		{EqualJitter, 60, 500 * time.Millisecond, time.Second},
	} {
		b.Jitter = tc.jitter
		if lo, hi := b.delay(tc.n, lowest), b.delay(tc.n, highest); lo != tc.lo || hi != tc.hi {
			t.Errorf("jitter %d, attempt %d: delays %v to %v, want %v to %v", tc.jitter, tc.n, lo, hi, tc.lo, tc.hi)
		}
		// The real source stays in the range, and spreads.
		seen := map[time.Duration]bool{}
		for range 100 {
			d := b.Delay(tc.n)
			if d < tc.lo || d > tc.hi {
				t.Fatalf("jitter %d, attempt %d: Delay %v outside %v to %v", tc.jitter, tc.n, d, tc.lo, tc.hi)
			}
			seen[d] = true
		}
		if spread := len(seen) > 1; spread != (tc.lo != tc.hi) {
			t.Errorf("jitter %d, attempt %d: %d different delays in 100", tc.jitter, tc.n, len(seen))
		}
	}
	if d := (Backoff{}).delay(0, highest); d != DefaultBackoffMin {
		t.Errorf("zero Backoff: first delay %v, want the default %v", d, DefaultBackoffMin)
	}
	if d := (Backoff{Min: time.Minute}).delay(0, highest); d != time.Minute {
		t.Errorf("Min over the default Max: %v, want Min", d)
	}
}

// TestRefreshMargin: a tenth of the token's life, at least 2 s, at most
// half of it.
func TestRefreshMargin(t *testing.T) {
	for life, want := range map[time.Duration]time.Duration{
		time.Hour:        6 * time.Minute,
		10 * time.Second: 2 * time.Second,
		3 * time.Second:  1500 * time.Millisecond,
	} {
		if got := refreshMargin(life); got != want {
			t.Errorf("refreshMargin(%v) = %v, want %v", life, got, want)
		}
	}
}
