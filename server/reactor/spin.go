package reactor

import (
	"errors"
	"time"

	"golang.org/x/sys/unix"
)

// spinner is an event loop's busy poll (Options.BusyPoll). After the loop
// has handled input or a wake, it does not go back to gnet's blocking
// epoll_wait at once: for the busy-poll window it polls, without blocking,
// an epoll instance of its own that holds the loop's sockets, and runs
// what other goroutines hand the loop (they skip the wake meanwhile: the
// loop is Entered). A client's next message is so taken without the
// kernel waking the loop's thread, which on an idle core costs several
// microseconds to the sender and to the message. It returns to gnet as
// soon as a socket is readable (gnet reads it), and when the window ends
// without one; so it spends at most the window of CPU after each burst,
// and all of it while messages keep coming. Loop goroutine only.
//
// gnet's own tasks (a connection handed over by the acceptor, an input
// woken) wait for the end of the window or the next readable socket.
type spinner struct {
	ep     int
	window time.Duration
	events [8]unix.EpollEvent
}

func newSpinner(window time.Duration) (*spinner, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	return &spinner{ep: ep, window: window}, nil
}

// add watches a connection's socket (level-triggered: readable while
// gnet has not read what arrived).
func (s *spinner) add(fd int) {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}
	_ = unix.EpollCtl(s.ep, unix.EPOLL_CTL_ADD, fd, &ev)
}

// remove stops watching a socket gnet is closing.
func (s *spinner) remove(fd int) {
	_ = unix.EpollCtl(s.ep, unix.EPOLL_CTL_DEL, fd, nil)
}

func (s *spinner) close() { _ = unix.Close(s.ep) }

// spin polls for the window, or until a socket is readable.
func (s *spinner) spin(l Loop) {
	deadline := time.Now().Add(s.window)
	l.Enter()
	for {
		n, err := unix.EpollWait(s.ep, s.events[:], 0)
		if n > 0 || err != nil && !errors.Is(err, unix.EINTR) {
			break
		}
		if !time.Now().Before(deadline) {
			break
		}
		l.Leave() // runs and writes what was handed to the loop meanwhile
		l.Enter()
	}
	l.Leave()
}
