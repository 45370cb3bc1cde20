package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// userHZ is the unit of utime and stime in /proc/<pid>/stat: USER_HZ,
// which is 100 on every Linux architecture regardless of the kernel's HZ.
const userHZ = 100

// procCPU returns the CPU time (user + system) process pid has used.
// Its resolution is 10 ms.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("server cpu: %w", err)
	}
	// The command name may hold spaces and parentheses: fields start after
	// the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("server cpu: /proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("server cpu: /proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("server cpu: /proc/%d/stat: %w", pid, err)
	}
	return time.Duration(ut+st) * time.Second / userHZ, nil
}

// memStatus is the memory of a process from /proc/<pid>/status, in KiB.
type memStatus struct {
	RSS  int64 // VmRSS: resident now
	Peak int64 // VmHWM: the most it was ever resident
}

func procMem(pid int) (memStatus, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memStatus{}, fmt.Errorf("memory: %w", err)
	}
	defer f.Close()
	var m memStatus
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		var dst *int64
		switch {
		case strings.HasPrefix(line, "VmRSS:"):
			dst = &m.RSS
		case strings.HasPrefix(line, "VmHWM:"):
			dst = &m.Peak
		default:
			continue
		}
		fs := strings.Fields(line)
		if len(fs) >= 2 {
			*dst, _ = strconv.ParseInt(fs[1], 10, 64)
		}
	}
	if m.RSS == 0 {
		return m, fmt.Errorf("memory: /proc/%d/status has no VmRSS", pid)
	}
	return m, sc.Err()
}

// procAlive reports whether pid names a running process we can read.
func procAlive(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("pid %d is not a process id", pid)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/stat", pid)); err != nil {
		return fmt.Errorf("pid %d: no such process (%w)", pid, err)
	}
	return nil
}

// findListener returns the pid of the process that holds a listening TCP
// socket on port: the socket's inode from /proc/net/tcp and tcp6, then the
// process whose /proc/<pid>/fd has a link to it. It fails when the socket
// is not found or belongs to a process we may not inspect.
func findListener(port int) (int, error) {
	inodes := map[string]bool{}
	for _, name := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "0A" { // 0A: TCP_LISTEN
				continue
			}
			_, hexPort, ok := strings.Cut(f[1], ":")
			if !ok {
				continue
			}
			if p, err := strconv.ParseUint(hexPort, 16, 16); err == nil && int(p) == port && f[9] != "0" {
				inodes["socket:["+f[9]+"]"] = true
			}
		}
	}
	if len(inodes) == 0 {
		return 0, fmt.Errorf("no socket listens on port %d", port)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range procs {
		pid, err := strconv.Atoi(filepath.Base(dir))
		if err != nil {
			continue
		}
		fds, err := os.ReadDir(dir + "/fd")
		if err != nil {
			continue // another user's process
		}
		for _, fd := range fds {
			if link, err := os.Readlink(dir + "/fd/" + fd.Name()); err == nil && inodes[link] {
				return pid, nil
			}
		}
	}
	return 0, fmt.Errorf("the socket listening on port %d belongs to no process this user may inspect", port)
}

// fdLimit is this process's soft limit on open files (Go raises it to the
// hard limit at start).
func fdLimit() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	return rl.Cur, nil
}

// checkFDs fails clearly when conns connections (plus a margin for the
// publisher, listeners and files) would not fit under the open-file limit.
func checkFDs(conns int) error {
	limit, err := fdLimit()
	if err != nil {
		return fmt.Errorf("open-file limit: %w", err)
	}
	need := uint64(conns) + fdMargin
	if limit < need {
		return fmt.Errorf("open-file limit (RLIMIT_NOFILE) is %d, but %d connections need at least %d: raise it (ulimit -n %d) or use fewer connections", limit, conns, need, need)
	}
	return nil
}

const fdMargin = 64

// serverFDLimit reads "Max open files" of pid from /proc/<pid>/limits.
func serverFDLimit(pid int) (int64, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return n, true
				}
			}
		}
	}
	return 0, false
}
