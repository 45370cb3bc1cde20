package wheel

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

// active reports whether t is waiting to fire.
func active(t *Timer) bool { return t.slot.Load() >= 0 }

// generous bounds a wait for a timer that must fire: it says the timer
// fires at all, not how soon.
const generous = 10 * time.Second

// earlyAllowance is how early a timer added at wall time at may fire by
// the wheel's contract: by as many ticks as the wheel's goroutine trailed
// the wall clock then (Add reads the wheel's tick, not the clock). Call it
// before Add: the tick it reads is then no later than the one Add reads.
// A wheel that keeps up has an allowance of zero.
func earlyAllowance(w *Wheel, at time.Time) time.Duration {
	behind := int64(at.Sub(w.start)/w.tick) - w.now.Load()
	return time.Duration(max(behind, 0)) * w.tick
}

// notEarly fails unless a timer armed at armed for d, with allowance
// early, fired no earlier than d after armed.
func notEarly(t *testing.T, what string, armed, fired time.Time, d, early time.Duration) {
	t.Helper()
	if el := fired.Sub(armed); el < d-early {
		t.Fatalf("%s fired %v after it was armed for %v (the wheel trailed the clock by %v)", what, el, d, early)
	}
}

// stamped is a timer that sends the wall time it fires at, with when it
// was armed.
type stamped struct {
	tm    Timer
	fired chan time.Time
	armed time.Time     // the wall time of its first Add
	early time.Duration // earlyAllowance at armed
}

// armStamped arms a stamped timer on w for d.
func armStamped(w *Wheel, d time.Duration) *stamped {
	s := &stamped{fired: make(chan time.Time, 2)}
	s.tm.Init(func() { s.fired <- time.Now() })
	s.armed = time.Now()
	s.early = earlyAllowance(w, s.armed)
	w.Add(&s.tm, d)
	return s
}

// firesAfter waits for s to fire and fails unless it fired no earlier than
// d after it was armed, less its allowance.
func (s *stamped) firesAfter(t *testing.T, what string, d time.Duration) {
	t.Helper()
	select {
	case at := <-s.fired:
		notEarly(t, what, s.armed, at, d, s.early)
	case <-time.After(generous):
		t.Fatal("timer never fired")
	}
}

func TestFiresAfterDeadline(t *testing.T) {
	w := New(Config{Tick: time.Millisecond})
	defer w.Close()
	s := armStamped(w, 20*time.Millisecond)
	if !active(&s.tm) {
		t.Fatal("timer not active after Add")
	}
	s.firesAfter(t, "timer", 20*time.Millisecond)
	if active(&s.tm) {
		t.Fatal("timer still active after firing")
	}
	if w.Stop(&s.tm) {
		t.Fatal("Stop of a fired timer reported true")
	}
}

// sentinel arms a fresh timer for d and waits until it has fired: the
// wheel has then swept every slot due up to d from now.
func sentinel(t *testing.T, w *Wheel, d time.Duration) {
	t.Helper()
	done := make(chan struct{})
	var tm Timer
	tm.Init(func() { close(done) })
	w.Add(&tm, d)
	select {
	case <-done:
	case <-time.After(generous):
		t.Fatal("sentinel timer never fired")
	}
}

func TestStopPreventsFiring(t *testing.T) {
	w := New(Config{Tick: time.Millisecond})
	defer w.Close()
	var n atomic.Int32
	timers := make([]Timer, 100)
	// Armed long enough that none fires before the loop below stops it,
	// even on a loaded machine under the race detector.
	for i := range timers {
		timers[i].Init(func() { n.Add(1) })
		w.Add(&timers[i], 200*time.Millisecond)
	}
	for i := range timers {
		if i%2 == 0 && !w.Stop(&timers[i]) {
			t.Fatalf("Stop of armed timer %d reported false", i)
		}
	}
	// Once a timer armed later for longer has fired, the slots of the
	// 100 have been swept.
	sentinel(t, w, 300*time.Millisecond)
	if got := n.Load(); got != 50 {
		t.Fatalf("%d timers fired, want the 50 not stopped", got)
	}
	for i := range timers {
		if active(&timers[i]) {
			t.Fatalf("timer %d still active", i)
		}
	}
}

// TestAddMovesArmedTimer checks that adding an armed timer moves it: it
// fires once, at the new deadline.
func TestAddMovesArmedTimer(t *testing.T) {
	w := New(Config{Tick: time.Millisecond})
	defer w.Close()
	s := armStamped(w, 10*time.Millisecond)
	w.Add(&s.tm, 80*time.Millisecond)
	s.firesAfter(t, "timer moved to 80ms", 80*time.Millisecond)
	sentinel(t, w, 30*time.Millisecond)
	select {
	case <-s.fired:
		t.Fatal("timer fired twice")
	default:
	}
}

// TestLongTimersWaitTurns checks deadlines longer than one turn of the wheel
// fire on time, not at the first pass of their slot.
func TestLongTimersWaitTurns(t *testing.T) {
	w := newWheel(Config{Tick: time.Millisecond}, 8) // one turn: 8 ms
	defer w.Close()
	s := armStamped(w, 50*time.Millisecond)
	s.firesAfter(t, "timer of 50ms on a wheel of 8ms", 50*time.Millisecond)
}

// TestConcurrentUse arms, re-arms and stops timers from many goroutines while
// the wheel fires them. Every timer not stopped fires; a stopped one fires
// at most once (an earlier arming's firing may have been under way); none
// fires more often than it was armed.
func TestConcurrentUse(t *testing.T) {
	w := newWheel(Config{Tick: time.Millisecond}, 64)
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
					w.Add(&tr.tm, 5*time.Millisecond) // moves it
					tr.armed++
				}
				if i%4 == 0 {
					tr.stopped = w.Stop(&tr.tm)
				}
			}
		}(all[g])
	}
	wg.Wait()
	deadline := time.Now().Add(generous)
	for g := range all {
		for i := range all[g] {
			tr := &all[g][i]
			// Poll until it has fired and is not armed again (a second Add
			// may have re-armed it after an earlier arming fired).
			for !tr.stopped && (tr.fired.Load() == 0 || active(&tr.tm)) && time.Now().Before(deadline) {
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
			case active(&tr.tm):
				t.Fatalf("timer %d/%d still active", g, i)
			}
		}
	}
}

// TestCoarseClockMoves checks the coarse clock follows the wall clock: it
// is never ahead of it, and it catches up with a wall time once that has
// passed.
func TestCoarseClockMoves(t *testing.T) {
	w := New(Config{Tick: time.Millisecond})
	defer w.Close()
	target := time.Now()
	deadline := target.Add(generous)
	for {
		c := w.NowNano()
		if now := time.Now(); c > now.UnixNano() {
			t.Fatalf("coarse clock %v ahead of the wall clock %v", time.Unix(0, c), now)
		} else if now.After(deadline) {
			t.Fatalf("coarse clock %v has not reached %v", time.Unix(0, c), target)
		}
		if c >= target.UnixNano() {
			break
		}
		time.Sleep(time.Millisecond)
	}
}

// TestNeverEarly arms many timers at random durations (zero, under a tick,
// whole ticks, over one turn of the wheel), at random moments within a
// tick, and by a first Add or by an Add that moves a timer armed far away, from
// several goroutines. Each must fire exactly once, and never before its
// duration has passed on the wall clock (less only the time the wheel's
// goroutine trailed the clock when the timer was armed, which the wheel
// documents: see earlyAllowance).
func TestNeverEarly(t *testing.T) {
	for _, cfg := range []struct {
		Tick  time.Duration
		Slots int
	}{{time.Millisecond, 16}, {3 * time.Millisecond, 64}} {
		t.Run(cfg.Tick.String(), func(t *testing.T) {
			w := newWheel(Config{Tick: cfg.Tick}, cfg.Slots)
			defer w.Close()
			const goroutines, per = 4, 250
			type tracked struct {
				tm     Timer
				d      time.Duration
				armed  time.Time
				early  time.Duration
				fired  atomic.Int32
				firedN atomic.Int64 // time.Since(base) at the first firing
			}
			base := time.Now()
			all := make([]tracked, goroutines*per)
			var left sync.WaitGroup
			left.Add(len(all))
			var wg sync.WaitGroup
			for g := 0; g < goroutines; g++ {
				wg.Add(1)
				go func(g int) {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(g), uint64(cfg.Tick)))
					maxD := int64(60 * cfg.Tick)
					for i := g; i < len(all); i += goroutines {
						tr := &all[i]
						tr.tm.Init(func() {
							if tr.fired.Add(1) == 1 {
								tr.firedN.Store(int64(time.Since(base)))
								left.Done()
							}
						})
						switch i % 4 {
						case 0:
							tr.d = time.Duration(rng.Int64N(maxD))
						case 1:
							tr.d = time.Duration(rng.Int64N(int64(cfg.Tick))) // under a tick, or 0
						case 2:
							tr.d = time.Duration(rng.Int64N(60)) * cfg.Tick // whole ticks
						case 3:
							tr.d = time.Duration(rng.Int64N(maxD)) + time.Duration(cfg.Slots)*cfg.Tick // over a turn
						}
						if i%3 == 0 {
							w.Add(&tr.tm, time.Hour) // moved below
						}
						// A random moment within a tick.
						time.Sleep(time.Duration(rng.Int64N(int64(cfg.Tick))))
						tr.armed = time.Now()
						tr.early = earlyAllowance(w, tr.armed)
						w.Add(&tr.tm, tr.d)
					}
				}(g)
			}
			wg.Wait()
			done := make(chan struct{})
			go func() { left.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(generous):
				unfired := 0
				for i := range all {
					if all[i].fired.Load() == 0 {
						unfired++
					}
				}
				t.Fatalf("%d of %d timers never fired", unfired, len(all))
			}
			// Every slot a timer could be in has been swept: none fires twice.
			sentinel(t, w, time.Duration(cfg.Slots+62)*cfg.Tick)
			allowed := 0
			for i := range all {
				tr := &all[i]
				if f := tr.fired.Load(); f != 1 {
					t.Fatalf("timer %d (%v) fired %d times", i, tr.d, f)
				}
				if tr.early > 0 {
					allowed++
				}
				at := base.Add(time.Duration(tr.firedN.Load()))
				notEarly(t, fmt.Sprintf("timer %d", i), tr.armed, at, tr.d, tr.early)
			}
			t.Logf("%d timers, %d armed while the wheel trailed the clock", len(all), allowed)
		})
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
