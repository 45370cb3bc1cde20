package wheel

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

func TestFiresAfterDeadline(t *testing.T) {
	w := New(Config{Tick: time.Millisecond})
	defer w.Close()
	fired := make(chan time.Time, 1)
	var tm Timer
	tm.Init(func() { fired <- time.Now() })
	time.Sleep(5 * time.Millisecond)
	start := time.Now()
	lag := start.Sub(w.Now()) // how far the wheel's clock trails the wall clock
	w.Add(&tm, 20*time.Millisecond)
	if !tm.Active() {
		t.Fatal("timer not active after Add")
	}
	select {
	case at := <-fired:
		if el := at.Sub(start); el < 20*time.Millisecond-lag {
			t.Fatalf("fired after %v, before its 20ms deadline (wheel clock lag %v)", el, lag)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("timer never fired")
	}
	if tm.Active() {
		t.Fatal("timer still active after firing")
	}
	if w.Stop(&tm) {
		t.Fatal("Stop of a fired timer reported true")
	}
}

func TestStopPreventsFiring(t *testing.T) {
	w := New(Config{Tick: time.Millisecond})
	defer w.Close()
	var n atomic.Int32
	timers := make([]Timer, 100)
	for i := range timers {
		timers[i].Init(func() { n.Add(1) })
		w.Add(&timers[i], 10*time.Millisecond)
	}
	for i := range timers {
		if i%2 == 0 && !w.Stop(&timers[i]) {
			t.Fatalf("Stop of armed timer %d reported false", i)
		}
	}
	time.Sleep(60 * time.Millisecond)
	if got := n.Load(); got != 50 {
		t.Fatalf("%d timers fired, want the 50 not stopped", got)
	}
}

func TestResetMovesDeadline(t *testing.T) {
	w := New(Config{Tick: time.Millisecond})
	defer w.Close()
	fired := make(chan time.Time, 2)
	var tm Timer
	tm.Init(func() { fired <- time.Now() })
	start := time.Now()
	lag := start.Sub(w.Now())
	w.Add(&tm, 10*time.Millisecond)
	w.Reset(&tm, 80*time.Millisecond)
	select {
	case at := <-fired:
		if el := at.Sub(start); el < 80*time.Millisecond-lag {
			t.Fatalf("fired after %v: the reset to 80ms was ignored", el)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("timer never fired")
	}
	select {
	case <-fired:
		t.Fatal("timer fired twice")
	case <-time.After(30 * time.Millisecond):
	}
}

// TestLongTimersWaitTurns checks deadlines longer than one turn of the wheel
// fire on time, not at the first pass of their slot.
func TestLongTimersWaitTurns(t *testing.T) {
	w := New(Config{Tick: time.Millisecond, Slots: 8}) // one turn: 8 ms
	defer w.Close()
	fired := make(chan time.Time, 1)
	var tm Timer
	tm.Init(func() { fired <- time.Now() })
	start := time.Now()
	lag := start.Sub(w.Now())
	w.Add(&tm, 50*time.Millisecond)
	select {
	case at := <-fired:
		if el := at.Sub(start); el < 50*time.Millisecond-lag {
			t.Fatalf("fired after %v, want at least 50ms", el)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("timer never fired")
	}
}

// TestConcurrentUse arms, re-arms and stops timers from many goroutines while
// the wheel fires them. Every timer not stopped fires; a stopped one fires
// at most once (an earlier arming's firing may have been under way); none
// fires more often than it was armed.
func TestConcurrentUse(t *testing.T) {
	w := New(Config{Tick: time.Millisecond, Slots: 64})
	defer w.Close()
	const goroutines, per = 8, 500
	type tracked struct {
		tm      Timer
		fired   atomic.Int32
		armed   int32
		stopped bool
	}
	all := make([][]tracked, goroutines)
	var wg sync.WaitGroup
	for g := range all {
		all[g] = make([]tracked, per)
		wg.Add(1)
		go func(ts []tracked) {
			defer wg.Done()
			for i := range ts {
				tr := &ts[i]
				tr.tm.Init(func() { tr.fired.Add(1) })
				w.Add(&tr.tm, time.Duration(i%20)*time.Millisecond)
				tr.armed++
				if i%3 == 0 {
					w.Reset(&tr.tm, 5*time.Millisecond)
					tr.armed++
				}
				if i%4 == 0 {
					tr.stopped = w.Stop(&tr.tm)
				}
			}
		}(all[g])
	}
	wg.Wait()
	time.Sleep(60 * time.Millisecond) // every deadline has passed
	deadline := time.Now().Add(3 * time.Second)
	for g := range all {
		for i := range all[g] {
			tr := &all[g][i]
			for !tr.stopped && tr.fired.Load() == 0 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			f := tr.fired.Load()
			switch {
			case !tr.stopped && f == 0:
				t.Fatalf("timer %d/%d never fired", g, i)
			case tr.stopped && f > 1:
				t.Fatalf("stopped timer %d/%d fired %d times", g, i, f)
			case f > tr.armed:
				t.Fatalf("timer %d/%d fired %d times, armed %d", g, i, f, tr.armed)
			case tr.tm.Active():
				t.Fatalf("timer %d/%d still active", g, i)
			}
		}
	}
}

func TestCoarseClockMoves(t *testing.T) {
	w := New(Config{Tick: time.Millisecond})
	defer w.Close()
	a := w.NowNano()
	time.Sleep(20 * time.Millisecond)
	b := w.NowNano()
	if b-a < int64(10*time.Millisecond) {
		t.Fatalf("coarse clock moved %v in 20ms", time.Duration(b-a))
	}
	if d := time.Since(w.Now()); d < 0 || d > 100*time.Millisecond {
		t.Fatalf("coarse clock is %v away from the wall clock", d)
	}
}

func TestTimerBudget(t *testing.T) {
	if size := unsafe.Sizeof(Timer{}); size > 48 {
		t.Fatalf("Timer is %d bytes, the budget is 48", size)
	}
	w := New(Config{})
	defer w.Close()
	var tm Timer
	tm.Init(func() {})
	allocs := testing.AllocsPerRun(1000, func() {
		w.Add(&tm, time.Second)
		w.Stop(&tm)
	})
	if allocs != 0 {
		t.Fatalf("Add+Stop allocates %.1f times", allocs)
	}
}
