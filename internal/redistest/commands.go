package redistest

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// cmdTimeout bounds each command of Do, Int, Strings, Info and the others.
const cmdTimeout = 5 * time.Second

// conn returns the server's own client, made on first use after a start.
//
// The client is a single connection speaking RESP2 that sends nothing of
// its own: no HELLO, CLIENT SETINFO or CLIENT TRACKING on connecting, no
// background PINGs, no retries, so that INFO commandstats counts only what
// the test sends (and the INFO and CONFIG RESETSTAT of this package). It
// does not follow cluster redirections: a command for a slot another node
// serves gets the MOVED error.
func (s *Server) conn() (rueidis.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client != nil {
		return s.client, nil
	}
	c, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress:       []string{s.Addr},
		ForceSingleClient: true,
		AlwaysRESP2:       true,
		DisableCache:      true,
		DisableRetry:      true,
		ClientSetInfo:     rueidis.DisableClientSetInfo,
		PipelineMultiplex: -1,
		// A negative KeepAlive also turns off rueidis' background PINGs.
		Dialer:           net.Dialer{Timeout: 2 * time.Second, KeepAlive: -1},
		ConnWriteTimeout: 10 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	s.client = c
	return c, nil
}

// Result runs one command and returns its reply, or the error: a Redis
// error reply (*rueidis.RedisError), rueidis.Nil for a nil reply, or why the
// server could not be reached or did not answer before ctx ended. It does
// not fail the test, so it may be called from any goroutine.
func (s *Server) Result(ctx context.Context, args ...string) (rueidis.RedisMessage, error) {
	c, err := s.conn()
	if err != nil {
		return rueidis.RedisMessage{}, err
	}
	return c.Do(ctx, c.B().Arbitrary(args...).Build()).ToMessage()
}

func (s *Server) result(args ...string) (rueidis.RedisMessage, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	return s.Result(ctx, args...)
}

// Do runs one command (at most 5 s) and returns its reply as text: a string
// as is, an integer in decimal, a nil reply as "(nil)", an array as its
// elements one a line; and on failure the error's text, such as
// "MOVED 866 127.0.0.1:40001", "WRONGTYPE ..." or a connection error. As in
// rueidis, the generic "ERR " prefix is dropped: "unknown command ...". It
// never fails the test, so it may be called from any goroutine.
func (s *Server) Do(t testing.TB, args ...string) string {
	t.Helper()
	msg, err := s.result(args...)
	if rueidis.IsRedisNil(err) {
		return "(nil)"
	}
	if err != nil {
		return err.Error()
	}
	return text(msg)
}

func text(m rueidis.RedisMessage) string {
	switch {
	case m.IsNil():
		return "(nil)"
	case m.IsInt64():
		n, _ := m.AsInt64()
		return strconv.FormatInt(n, 10)
	case m.IsArray():
		elems, _ := m.ToArray()
		lines := make([]string, len(elems))
		for i, e := range elems {
			lines[i] = text(e)
		}
		return strings.Join(lines, "\n")
	}
	if str, err := m.ToString(); err == nil {
		return str
	}
	v, err := m.ToAny()
	if err != nil {
		return err.Error()
	}
	return fmt.Sprint(v)
}

// Int runs a command whose reply is an integer, or a string holding one
// (GET of a counter), and returns it. It fails the test otherwise.
func (s *Server) Int(t testing.TB, args ...string) int64 {
	t.Helper()
	msg, err := s.result(args...)
	if err != nil {
		t.Fatalf("redistest: %s %v: %v", s.Addr, args, err)
	}
	n, err := msg.AsInt64()
	if err != nil {
		t.Fatalf("redistest: %s %v: reply is no integer: %v", s.Addr, args, err)
	}
	return n
}

// Strings runs a command whose reply is an array of strings (KEYS, LRANGE,
// ...) and returns it. It fails the test otherwise.
func (s *Server) Strings(t testing.TB, args ...string) []string {
	t.Helper()
	msg, err := s.result(args...)
	if err != nil {
		t.Fatalf("redistest: %s %v: %v", s.Addr, args, err)
	}
	strs, err := msg.AsStrSlice()
	if err != nil {
		t.Fatalf("redistest: %s %v: reply is no array of strings: %v", s.Addr, args, err)
	}
	return strs
}

// must runs a command and fails the test on any error.
func (s *Server) must(t testing.TB, args ...string) rueidis.RedisMessage {
	t.Helper()
	msg, err := s.result(args...)
	if err != nil {
		t.Fatalf("redistest: %s %v: %v", s.Addr, args, err)
	}
	return msg
}

// Info runs INFO section ("" for the default sections) and returns its
// fields, "used_memory" -> "1234" and so on.
func (s *Server) Info(t testing.TB, section string) map[string]string {
	t.Helper()
	args := []string{"INFO"}
	if section != "" {
		args = append(args, section)
	}
	msg := s.must(t, args...)
	str, err := msg.ToString()
	if err != nil {
		t.Fatalf("redistest: %s INFO %s: %v", s.Addr, section, err)
	}
	return parseInfo(str)
}

// parseInfo parses INFO's "key:value" lines, skipping "# Section" ones.
func parseInfo(info string) map[string]string {
	fields := make(map[string]string)
	for line := range strings.SplitSeq(info, "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" || line[0] == '#' {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[k] = v
		}
	}
	return fields
}

// CommandStats returns how often each command was called since the start or
// the last ResetStats, from INFO commandstats: "evalsha" -> 3, "xrange" ->
// 12, "cluster|slots" -> 2 (lowercase, sub-commands as Redis names them).
// Calls that failed while running count; calls Redis refused to run (a
// MOVED redirection, a wrong number of arguments) do not. The INFO of each
// CommandStats call is counted from the next one on.
func (s *Server) CommandStats(t testing.TB) map[string]int64 {
	t.Helper()
	return commandStats(t, s.Info(t, "commandstats"))
}

func commandStats(t testing.TB, info map[string]string) map[string]int64 {
	t.Helper()
	stats := make(map[string]int64)
	for k, v := range info {
		name, ok := strings.CutPrefix(k, "cmdstat_")
		if !ok {
			continue
		}
		calls, _, _ := strings.Cut(v, ",")
		n, err := strconv.ParseInt(strings.TrimPrefix(calls, "calls="), 10, 64)
		if err != nil {
			t.Fatalf("redistest: INFO commandstats: %s:%s: %v", k, v, err)
		}
		stats[name] = n
	}
	return stats
}

// ResetStats runs CONFIG RESETSTAT, zeroing the command statistics and the
// other counters of INFO.
func (s *Server) ResetStats(t testing.TB) {
	t.Helper()
	s.must(t, "CONFIG", "RESETSTAT")
}

// CPU returns the CPU time the server used so far, system plus user, from
// INFO cpu.
func (s *Server) CPU(t testing.TB) time.Duration {
	t.Helper()
	info := s.Info(t, "cpu")
	var total time.Duration
	for _, k := range []string{"used_cpu_sys", "used_cpu_user"} {
		sec, err := strconv.ParseFloat(info[k], 64)
		if err != nil {
			t.Fatalf("redistest: %s INFO cpu: %s %q: %v", s.Addr, k, info[k], err)
		}
		total += time.Duration(sec * float64(time.Second))
	}
	return total
}
