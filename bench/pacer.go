package bench

import (
	"fmt"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// Pace is how the publisher waits for a publication's due time.
type Pace string

// The ways to wait. The Go timer (sleep) wakes up to a millisecond late,
// so at 10,000 publications a second the publisher sends bursts every
// millisecond. Spinning is exact but takes a whole core from the bench's
// receiving loops on a 2-core machine. A timerfd in the Go netpoller
// (timer) wakes within tens of µs without holding a core: the default.
const (
	PaceTimer Pace = "timer"
	PaceSleep Pace = "sleep"
	PaceSpin  Pace = "spin"
)

// ParsePace checks a --pace value.
func ParsePace(s string) (Pace, error) {
	switch p := Pace(s); p {
	case PaceTimer, PaceSleep, PaceSpin:
		return p, nil
	}
	return "", fmt.Errorf("unknown pace %q: want timer, sleep or spin", s)
}

// spinWindow is how long before a due time the spin pace stops sleeping.
const spinWindow = 1500 * time.Microsecond

// pacer waits until a time on the run's clock.
type pacer struct {
	pace  Pace
	clock *clock
	tfd   *os.File // PaceTimer: a non-blocking timerfd the netpoller watches
	fd    int
	buf   [8]byte
}

func newPacer(pace Pace, clk *clock) (*pacer, error) {
	p := &pacer{pace: pace, clock: clk}
	if pace != PaceTimer {
		return p, nil
	}
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("timerfd: %w", err)
	}
	p.fd = fd
	p.tfd = os.NewFile(uintptr(fd), "timerfd") // non-blocking: reads park in the netpoller
	return p, nil
}

// wait returns at or soon after due (ns on the clock).
func (p *pacer) wait(due int64) {
	for {
		d := time.Duration(due - p.clock.now())
		if d <= 0 {
			return
		}
		switch {
		case p.pace == PaceSleep:
			time.Sleep(d)
		case p.pace == PaceSpin && d > spinWindow:
			time.Sleep(d - spinWindow)
		case p.pace == PaceSpin:
			runtime.Gosched()
		case d > 5*time.Millisecond:
			time.Sleep(d - 2*time.Millisecond) // the timer's lateness is harmless this far out
		default:
			spec := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(d))}
			if err := unix.TimerfdSettime(p.fd, 0, &spec, nil); err != nil {
				time.Sleep(d)
				continue
			}
			_, _ = p.tfd.Read(p.buf[:]) // the expiration count; returns when it fires
		}
	}
}

func (p *pacer) close() {
	if p.tfd != nil {
		p.tfd.Close()
	}
}
