package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
)

// Result is one scenario run (or one saturate step): a JSON line of the
// bench's output. Latencies are µs; sizes KiB unless named otherwise.
type Result struct {
	Time     string `json:"time"`
	Label    string `json:"label"`
	Scenario string `json:"scenario"`
	// Step is the saturate step, from 1; 0 for the other scenarios.
	Step   int    `json:"step,omitempty"`
	Params Params `json:"params"`
	// WindowS is the measured window, s.
	WindowS float64 `json:"window_s"`

	// Publisher: everything sent in the run (warm-up included).
	Published int64 `json:"published"`
	PubAcked  int64 `json:"pub_acked"`
	PubErrors int64 `json:"pub_errors"`
	// PubLate is how late the publisher wrote, µs from the due time to the
	// clock read just before the write, of the publications due in the
	// window: the part of Latency that is the publisher's, not the
	// server's. (Results from before the sent time counted it from the
	// clock read before the batch was encoded, over the whole run.)
	PubLate *LatencySummary `json:"pub_late_us,omitempty"`
	// PubsInWindow is the publications due in the window.
	PubsInWindow int64 `json:"pubs_in_window,omitempty"`

	// Subscribers, for the publications due in the window.
	Expected int64 `json:"expected"`
	Received int64 `json:"received"`
	// Over the whole run, every connection and topic.
	Missing      int64 `json:"missing"`
	Dups         int64 `json:"dups"`
	Resets       int64 `json:"resets"`
	ResetSkipped int64 `json:"reset_skipped"`
	Lags         int64 `json:"lags"`
	// Closed is subscriber connections the server closed.
	Closed int64 `json:"server_closed"`
	Errors int64 `json:"errors"`
	// OfferedPerS is the deliveries a second the publication rate asks for.
	OfferedPerS float64 `json:"offered_per_s"`
	// DeliveriesPerS is deliveries that arrived in the window, over its length.
	DeliveriesPerS float64 `json:"deliveries_per_s"`
	// KeepsUp says every publication due in the window was delivered and
	// the p99 latency stayed under a second.
	KeepsUp bool `json:"keeps_up"`

	// Latency is from each publication's due time to its receipt: it
	// includes the publisher's lateness (PubLate), as an open-loop
	// measurement must, so a server that stalls cannot hide its backlog.
	Latency LatencySummary `json:"latency_us"`
	// LatencyDist is [percentile, µs] points of Latency for a percentile
	// plot.
	LatencyDist [][2]float64 `json:"latency_dist"`
	// LatencySent is from the clock read just before the write that
	// carried each publication to its receipt: the server and the
	// network without the publisher's lateness. Its count is 0 in results
	// from before publications carried their sent time.
	LatencySent LatencySummary `json:"latency_sent_us"`

	Server ServerFigures `json:"server"`
	Bench  BenchFigures  `json:"bench"`

	Idle *IdleFigures `json:"idle,omitempty"`
	Slow *SlowFigures `json:"slow,omitempty"`
	Herd *HerdFigures `json:"herd,omitempty"`
	HFT  *HFTFigures  `json:"hft,omitempty"`
	Soak *SoakFigures `json:"soak,omitempty"`

	Notes []string `json:"notes,omitempty"`
}

// Params are the parameters of a run.
type Params struct {
	Proto     Proto   `json:"proto"`
	Conns     int     `json:"conns"`
	Topics    int     `json:"topics"`
	Rate      float64 `json:"rate"` // per topic, /s
	Size      int     `json:"size"` // payload bytes
	DurationS float64 `json:"duration_s"`
	WarmupS   float64 `json:"warmup_s"`
	PubConns  int     `json:"pub_conns"`
	Loops     int     `json:"bench_loops"`
	Pace      Pace    `json:"pace"`
	SlowFrac  float64 `json:"slow_frac,omitempty"`
	HerdGapS  float64 `json:"herd_gap_s,omitempty"`
	SettleS   float64 `json:"settle_s,omitempty"`
	IdleSub   *bool   `json:"idle_sub,omitempty"`
	WS        string  `json:"ws"`
	TCP       string  `json:"tcp"`
}

// ServerFigures are read from /proc for the server process. CPU figures
// are null when the pid is unknown.
type ServerFigures struct {
	PID int `json:"pid,omitempty"`
	// CPUSeconds is utime+stime over the window.
	CPUSeconds *float64 `json:"cpu_s"`
	// CPUUsPerDelivery is CPUSeconds in µs over the deliveries that
	// arrived in the window.
	CPUUsPerDelivery *float64 `json:"cpu_us_per_delivery"`
	// DeliveriesPerCPUS is those deliveries over CPUSeconds.
	DeliveriesPerCPUS *float64 `json:"deliveries_per_cpu_s"`
	// CPUUsPerPublication is CPUSeconds in µs over the publications due
	// in the window (each taken in and fanned out to every subscriber).
	CPUUsPerPublication *float64 `json:"cpu_us_per_publication,omitempty"`
	RSSBeforeKiB        int64    `json:"rss_before_kib,omitempty"`
	RSSKiB              int64    `json:"rss_kib,omitempty"`
	// PeakRSSKiB is VmHWM: the most the process was ever resident, since
	// it started, not only during this run.
	PeakRSSKiB int64              `json:"peak_rss_kib,omitempty"`
	Metrics    map[string]float64 `json:"metrics_delta,omitempty"`
	Note       string             `json:"note,omitempty"`
}

// BenchFigures are the load generator's own costs.
type BenchFigures struct {
	CPUSeconds float64 `json:"cpu_s"`
	RSSKiB     int64   `json:"rss_kib"`
	Goroutines int     `json:"goroutines"`
}

// IdleFigures are the memory of idle connections.
type IdleFigures struct {
	Conns              int     `json:"conns"`
	Subscribed         bool    `json:"subscribed"`
	OpenS              float64 `json:"open_s"` // time to open (and subscribe) all
	ServerRSSBeforeKiB int64   `json:"server_rss_before_kib"`
	ServerRSSAfterKiB  int64   `json:"server_rss_after_kib"`
	ServerBytesPerConn float64 `json:"server_bytes_per_conn"`
	BenchRSSBeforeKiB  int64   `json:"bench_rss_before_kib"`
	BenchRSSAfterKiB   int64   `json:"bench_rss_after_kib"`
	BenchBytesPerConn  float64 `json:"bench_bytes_per_conn"`
	// ServerCPUSettleS is the server's CPU time while the connections sat
	// idle for the settle pause.
	ServerCPUSettleS *float64 `json:"server_cpu_settle_s"`
}

// SlowFigures are what the stalled connections saw. Result's latency,
// missing and dups are the healthy connections'.
type SlowFigures struct {
	SlowConns    int   `json:"slow_conns"`
	HealthyConns int   `json:"healthy_conns"`
	LagsSeen     int64 `json:"lags_seen"`   // lag messages read by slow conns afterwards
	ResetsSeen   int64 `json:"resets_seen"` // reset messages read by slow conns
	ConnsLagged  int   `json:"conns_lagged"`
	ClosedSeen   int64 `json:"closed_seen"` // op close read by slow conns
	// HealthyLags is lag messages the healthy connections got (should be 0).
	HealthyLags int64 `json:"healthy_lags"`
}

// HerdFigures are the reconnect storm's.
type HerdFigures struct {
	Conns int `json:"conns"`
	// ResubscribeS is from the first reconnect dial to the last sub reply.
	ResubscribeS float64 `json:"resubscribe_s"`
	// DialS is from the first to the last reconnect enrolled.
	DialS     float64 `json:"dial_s"`
	Recovered int64   `json:"recovered"` // rec true
	NotRec    int64   `json:"not_recovered"`
	// PubsWhileAway is the publications sent between the disconnect and the
	// last resubscription.
	PubsWhileAway int64 `json:"pubs_while_away"`
}

// HFTFigures compare the latency with round trips measured in the same
// run: the baselines before the first case (at the top level of the JSON,
// where results from before had their only ones) and after the last.
type HFTFigures struct {
	Baselines
	// After is the same baselines measured again after the last case, so
	// that a change of the machine's state during the run shows.
	After *Baselines `json:"baselines_after,omitempty"`

	TargetP50Us int64 `json:"target_p50_us"`
	TargetP99Us int64 `json:"target_p99_us"`
	MeetsTarget bool  `json:"meets_target"`
}

// Baselines are round trips of 64-byte messages, one at a time, each
// measured with nothing else running.
type Baselines struct {
	// LoopbackRTT is a ping-pong between two TCP sockets inside the bench
	// process (no server): the floor of any round trip here.
	LoopbackRTT LatencySummary `json:"loopback_rtt_us"`
	// EchoRTT is a ping-pong with a plain TCP echo server (tickfan bench
	// echo) run where the server runs, pinned to its core: the floor of a
	// round trip that crosses the same two cores a publication crosses.
	// Nil when no --echo was given.
	EchoRTT *LatencySummary `json:"echo_rtt_us,omitempty"`
	// ServerPingRTT is the ping command's round trip to the server over
	// TCP msgpack, one at a time.
	ServerPingRTT LatencySummary `json:"server_ping_rtt_us"`
}

// Emit writes r as one JSON line.
func Emit(w io.Writer, r Result) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// ReadResults reads a JSON lines file of results; blank lines are skipped.
func ReadResults(path string) ([]Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var rs []Result
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for line := 1; sc.Scan(); line++ {
		b := sc.Bytes()
		if len(b) == 0 {
			continue
		}
		var r Result
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		rs = append(rs, r)
	}
	return rs, sc.Err()
}
