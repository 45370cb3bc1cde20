// Package wheel is a hashed timing wheel for the server's deadlines:
// heartbeats, idle timeouts, handshake timeouts, token expiry and slow-client
// timeouts. It trades precision (one tick, 10 ms by default) for cheap
// timers: adding or stopping one is a hash, a short per-slot lock and a list
// link, with no allocation, and a million live timers cost nothing while
// they wait. It also keeps a coarse clock for the hot path (Now).
//
// It knows nothing of connections: a Timer carries a callback, which runs on
// the wheel's own goroutine and must not block (hand the work to an event
// loop instead).
package wheel

import (
	"sync"
	"sync/atomic"
	"time"
)

// Timer is one deadline. Embed it in the object it times (so adding it
// allocates nothing) and set its callback once with Init. A Timer must not
// be copied after first use. Add, Reset and Stop of one Timer must not run
// concurrently with each other; firing may run concurrently with them, and
// Stop reports whether it won.
type Timer struct {
	next, prev *Timer
	expire     int64        // tick at which the timer fires
	slot       atomic.Int32 // slot index while linked, -1 otherwise
	fn         func(*Timer)
}

// Init sets the callback run when the timer fires. Call it once, before Add.
func (t *Timer) Init(fn func()) {
	t.InitFunc(func(*Timer) { fn() })
}

// InitFunc is Init with a callback that is given the timer. A function
// shared by many timers (one that finds its owner from the timer) costs
// no allocation per timer, where a closure per timer would.
func (t *Timer) InitFunc(fn func(*Timer)) {
	t.fn = fn
	t.slot.Store(-1)
}

// Active reports whether the timer is waiting to fire.
func (t *Timer) Active() bool { return t.slot.Load() >= 0 }

type slot struct {
	mu   sync.Mutex
	head Timer // sentinel of a circular list
	_    [24]byte
}

// Wheel is a hashed timing wheel; its methods are safe for concurrent use.
type Wheel struct {
	tick  time.Duration
	mask  int64
	slots []slot
	start time.Time
	now   atomic.Int64 // current tick
	clock atomic.Int64 // coarse wall clock, unix nanoseconds
	stop  chan struct{}
	done  chan struct{}
}

// Config configures a Wheel. The zero value is the default.
type Config struct {
	// Tick is the wheel's resolution. Default 10 ms.
	Tick time.Duration
	// Slots is the number of slots, rounded up to a power of two. Default 4096
	// (one turn is 41 s at 10 ms; longer timers wait more turns).
	Slots int
}

// New starts a wheel; Close stops it.
func New(cfg Config) *Wheel {
	if cfg.Tick <= 0 {
		cfg.Tick = 10 * time.Millisecond
	}
	if cfg.Slots <= 0 {
		cfg.Slots = 4096
	}
	n := 1
	for n < cfg.Slots {
		n <<= 1
	}
	w := &Wheel{tick: cfg.Tick, mask: int64(n - 1), slots: make([]slot, n),
		start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	for i := range w.slots {
		h := &w.slots[i].head
		h.next, h.prev = h, h
	}
	w.clock.Store(w.start.UnixNano())
	go w.run()
	return w
}

// Tick returns the wheel's resolution.
func (w *Wheel) Tick() time.Duration { return w.tick }

// Now returns the coarse clock: the wall time of the latest tick. Reading it
// costs an atomic load, not a clock read.
func (w *Wheel) Now() time.Time { return time.Unix(0, w.clock.Load()) }

// NowNano returns Now as unix nanoseconds.
func (w *Wheel) NowNano() int64 { return w.clock.Load() }

// Add arms t to fire once the wheel's clock has advanced by d (rounded up to
// whole ticks, plus one: at most two ticks late). The wheel's clock catches
// up with the wall clock at every tick; if the wheel's goroutine is held up,
// a timer added meanwhile may fire early by that delay (reading the wall
// clock here would double the cost of Add). An
// armed timer is moved to the new deadline.
func (w *Wheel) Add(t *Timer, d time.Duration) {
	ticks := int64((d + w.tick - 1) / w.tick)
	if ticks < 1 {
		ticks = 1
	}
	w.Stop(t)
	// The real time lies somewhere in the tick after now: one tick more
	// makes sure the timer never fires before d has passed.
	expire := w.now.Load() + 1 + ticks
	for {
		i := expire & w.mask
		s := &w.slots[i]
		s.mu.Lock()
		// The ticker publishes tick N before it locks N's slot. Seeing a
		// tick before expire here means the slot has not been swept for
		// expire yet; otherwise (the ticker raced ahead) aim one tick on.
		if now := w.now.Load(); now >= expire {
			s.mu.Unlock()
			expire = now + 1
			continue
		}
		t.expire = expire
		h := &s.head
		t.prev, t.next = h.prev, h
		h.prev.next = t
		h.prev = t
		t.slot.Store(int32(i))
		s.mu.Unlock()
		return
	}
}

// Reset is Add: it moves t to fire after d from now. As with time.Timer, a
// firing already under way when Reset is called still happens, and t fires
// again at its new deadline.
func (w *Wheel) Reset(t *Timer, d time.Duration) { w.Add(t, d) }

// Stop disarms t and reports whether it was armed; false means it had fired
// (or is firing) or was never armed.
func (w *Wheel) Stop(t *Timer) bool {
	i := t.slot.Load()
	if i < 0 {
		return false
	}
	s := &w.slots[i]
	s.mu.Lock()
	ok := t.slot.Load() == i
	if ok {
		unlink(t)
	}
	s.mu.Unlock()
	return ok
}

func unlink(t *Timer) {
	t.prev.next = t.next
	t.next.prev = t.prev
	t.next, t.prev = nil, nil
	t.slot.Store(-1)
}

// Close stops the wheel; timers still armed never fire.
func (w *Wheel) Close() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

func (w *Wheel) run() {
	defer close(w.done)
	tk := time.NewTicker(w.tick)
	defer tk.Stop()
	var due []*Timer
	for {
		select {
		case <-w.stop:
			return
		case now := <-tk.C:
			w.clock.Store(now.UnixNano())
			// Catch up every tick that elapsed, so a late wake fires what
			// was due rather than skipping slots.
			target := int64(now.Sub(w.start) / w.tick)
			for cur := w.now.Load(); cur < target; cur++ {
				w.now.Store(cur + 1)
				due = w.expire(cur+1, due[:0])
				for _, t := range due {
					t.fn(t)
				}
				clear(due)
			}
		}
	}
}

// expire detaches the timers of tick's slot that are due at or before tick.
func (w *Wheel) expire(tick int64, due []*Timer) []*Timer {
	s := &w.slots[tick&w.mask]
	s.mu.Lock()
	h := &s.head
	for t := h.next; t != h; {
		next := t.next
		if t.expire <= tick {
			unlink(t)
			due = append(due, t)
		}
		t = next
	}
	s.mu.Unlock()
	return due
}
