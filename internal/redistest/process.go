package redistest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// launch starts the process with s.argv and waits until it answers PING.
func (s *Server) launch() error {
	logf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	logStart, _ := logf.Seek(0, io.SeekEnd)
	cmd := exec.Command(s.bin, s.argv...)
	cmd.Dir = s.Dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	if err := startProcess(cmd); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()

	err = waitReady(s.Addr, cmd, done)
	if err == nil {
		return nil
	}
	s.Kill()
	out := s.logSince(logStart)
	if bytes.Contains(out, []byte("Address already in use")) {
		err = fmt.Errorf("%w: %v", errPortInUse, err)
	}
	return fmt.Errorf("%w; %s:\n%s", err, s.log, tail(out, 20))
}

// waitReady waits until cmd answers PING on addr, it exits or readyTimeout
// passes. An answer from another process (one that had the port first) does
// not count.
func waitReady(addr string, cmd *exec.Cmd, exited <-chan struct{}) error {
	pid := cmd.Process.Pid
	deadline := time.Now().Add(readyTimeout)
	for {
		got, err := probe(addr)
		if err == nil {
			if got == pid {
				return nil
			}
			err = fmt.Errorf("another process (pid %d) answers on %s", got, addr)
		}
		select {
		case <-exited:
			return fmt.Errorf("redis-server on %s exited (%v) before answering PING", addr, cmd.ProcessState)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on %s did not answer PING within %v: %v", addr, readyTimeout, err)
		}
	}
}

// probe sends PING and INFO server on a new connection and returns the
// process_id the server reports.
func probe(addr string) (int, error) {
	conn, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := io.WriteString(conn, "PING\r\nINFO server\r\n"); err != nil {
		return 0, err
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	if line != "+PONG\r\n" {
		return 0, fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	if line, err = r.ReadString('\n'); err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "$")))
	if !strings.HasPrefix(line, "$") || err != nil || n < 0 || n > 1<<20 {
		return 0, fmt.Errorf("INFO server answered %q", strings.TrimSpace(line))
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(parseInfo(string(body))["process_id"])
	if err != nil {
		return 0, errors.New("no process_id in INFO server")
	}
	return pid, nil
}

// logSince returns what the log holds from offset on.
func (s *Server) logSince(offset int64) []byte {
	b, _ := os.ReadFile(s.log)
	if offset > int64(len(b)) {
		offset = 0
	}
	return b[offset:]
}

// tail returns the last n lines of b.
func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
