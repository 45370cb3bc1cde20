package redistest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// reserved holds the ports of this process' servers, from their start to
// their test's end, killed or not: a port freed by Kill stays its server's
// for Restart and is not handed to another Start meanwhile.
var reserved struct {
	mu    sync.Mutex
	ports map[int]bool
}

// freePort returns a port of 127.0.0.1 that was free a moment ago and
// reserves it until release.
//
// It is one below the kernel's ephemeral range (ip_local_port_range), so
// that no outgoing connection gets it as its local port. Such a connection
// would keep it taken after Kill: a Restart could not bind it again. The
// choice is random, so that test binaries running at once (go test ./...)
// rarely pick the same one; a start that still clashes is tried again.
func freePort() (int, error) {
	reserved.mu.Lock()
	defer reserved.mu.Unlock()
	if reserved.ports == nil {
		reserved.ports = make(map[int]bool)
	}
	lo, hi := 10000, ephemeralLow()
	for range 200 {
		if hi-lo < 1000 {
			break
		}
		port := lo + rand.IntN(hi-lo)
		if !reserved.ports[port] && canListen(port) {
			reserved.ports[port] = true
			return port, nil
		}
	}
	// No such range, or all of it tried taken: let the kernel choose.
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("redistest: finding a free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !reserved.ports[port] {
			reserved.ports[port] = true
			return port, nil
		}
	}
	return 0, fmt.Errorf("redistest: finding a free port: the kernel offers only reserved ones")
}

// release ends the reservations of freePort; zeros are ignored.
func release(ports ...int) {
	reserved.mu.Lock()
	defer reserved.mu.Unlock()
	for _, p := range ports {
		delete(reserved.ports, p)
	}
}

func canListen(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// ephemeralLow returns the first port the kernel hands out to outgoing
// connections: Linux' default when it cannot tell.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	if f := strings.Fields(string(b)); len(f) == 2 {
		if n, err := strconv.Atoi(f[0]); err == nil {
			return n
		}
	}
	return 32768
}
