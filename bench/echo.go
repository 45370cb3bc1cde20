package bench

import (
	"context"
	"errors"
	"net"
	"sync"
)

// ServeEcho writes back what it reads on every connection accepted on ln,
// until ctx ends; then it closes ln and the connections and returns nil.
// It is the far end of the hft scenario's echo baseline (--echo): run on
// the server's core, its round trip crosses the two cores a publication
// crosses, with no work of the server's in it. A goroutine a connection
// with a plain read and write (no splice, no buffering), as the in-process
// loopback baseline does.
func ServeEcho(ctx context.Context, ln net.Listener) error {
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	closed := false
	closeAll := func() {
		ln.Close()
		mu.Lock()
		closed = true
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	}
	var wg sync.WaitGroup
	stop := context.AfterFunc(ctx, closeAll)
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			closeAll()
			wg.Wait()
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		mu.Lock()
		if closed {
			c.Close()
		} else {
			conns[c] = struct{}{}
		}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			echo(c)
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
			c.Close()
		}()
	}
}

func echo(c net.Conn) {
	buf := make([]byte, 16<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
