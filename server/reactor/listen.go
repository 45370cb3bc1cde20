package reactor

import (
	"fmt"
	"net"
	"sync"

	"golang.org/x/sys/unix"
)

// ListenTCP binds a listener, naming it and its address in an error. Go's
// listeners set SO_REUSEADDR: a restart binds at once although
// connections of the old process linger in TIME_WAIT.
func ListenTCP(what, addr string) (*net.TCPListener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s listener: %w", what, err)
	}
	return ln.(*net.TCPListener), nil
}

// CheckListen reports, naming the address, why a listener could not bind
// there, for an engine whose own error does not say.
func CheckListen(what, addr string) error {
	ln, err := ListenTCP(what, addr)
	if err != nil {
		return err
	}
	return ln.Close()
}

// CloseWrite shuts the write side of a socket the engine owns (gnet and
// evio have no call for it). Loop goroutine of its connection.
func CloseWrite(fd int) error { return unix.Shutdown(fd, unix.SHUT_WR) }

// DownState records why an engine stopped serving, for ServingErr. Any
// goroutine may call its methods.
type DownState struct {
	mu     sync.Mutex
	reason error
}

// Set records that something stopped serving; Clear that it serves again.
func (d *DownState) Set(err error) { d.mu.Lock(); d.reason = err; d.mu.Unlock() }

// Clear records that everything serves again.
func (d *DownState) Clear() { d.Set(nil) }

// Err is why the engine is not serving, or nil.
func (d *DownState) Err() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.reason
}
