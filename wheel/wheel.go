package wheel

import (
	"sync"
	"sync/atomic"
	"time"
)

// Timer is one deadline. Embed it in the object it times (so adding it
// allocates nothing) and set its callback once with Init. A Timer must not
// be copied after first use. Add and Stop of one Timer must not run
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
}

// slots is the number of slots of a wheel from New: one turn is 41 s at
// 10 ms, and longer timers wait more turns.
const slots = 4096

// New starts a wheel; Close stops it.
func New(cfg Config) *Wheel { return newWheel(cfg, slots) }

// newWheel is New with n slots, rounded up to a power of two: tests use a
// few, so that their timers wait turns.
func newWheel(cfg Config, n int) *Wheel {
	if cfg.Tick <= 0 {
		cfg.Tick = 10 * time.Millisecond
	}
	size := 1
	for size < n {
		size <<= 1
	}
	w := &Wheel{tick: cfg.Tick, mask: int64(size - 1), slots: make([]slot, size),
		start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	for i := range w.slots {
		h := &w.slots[i].head
		h.next, h.prev = h, h
	}
	w.clock.Store(w.start.UnixNano())
	go w.run()
	return w
}

// NowNano returns the coarse clock: the wall time of the latest tick, in
// unix nanoseconds. Reading it costs an atomic load, not a clock read.
func (w *Wheel) NowNano() int64 { return w.clock.Load() }

// Add arms t to fire once the wheel's clock has advanced by d (rounded up to
// whole ticks, plus one: at most two ticks late). The wheel's clock catches
// up with the wall clock at every tick; if the wheel's goroutine is held up,
// a timer added meanwhile may fire early by that delay (reading the wall
// clock here would double the cost of Add).
//
// An armed timer is moved to the new deadline. As with time.Timer's Reset,
// a firing already under way still happens, and t fires again at its new
// deadline.
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
