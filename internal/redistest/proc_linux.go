package redistest

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

// startProcess starts cmd so that the kernel kills it when the test binary
// dies without running its Cleanups (a panic, a -timeout, a signal).
//
// Pdeathsig fires when the thread that forked the child exits, not only the
// process, and the Go runtime ends a thread when a goroutine locked to it
// returns. So every fork happens on one thread locked for good by a
// goroutine that never returns.
func startProcess(cmd *exec.Cmd) error {
	spawner.once.Do(func() {
		spawner.req = make(chan *exec.Cmd)
		spawner.res = make(chan error)
		go func() {
			runtime.LockOSThread()
			for c := range spawner.req {
				spawner.res <- c.Start()
			}
		}()
	})
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	spawner.mu.Lock()
	defer spawner.mu.Unlock()
	spawner.req <- cmd
	return <-spawner.res
}

var spawner struct {
	once sync.Once
	mu   sync.Mutex // one request at a time
	req  chan *exec.Cmd
	res  chan error
}
