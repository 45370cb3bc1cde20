package replay

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Report is what a replay found and did. Its JSON form is one line of
// `tickfan replay --json`.
type Report struct {
	// The capture.
	Packets        int            `json:"packets"`
	ClientStreams  int            `json:"client_streams"`
	StreamsBySrc   map[string]int `json:"streams_by_source"` // "" for streams that were not tickfan's
	ClientBytes    int            `json:"client_bytes"`
	ServerBytes    int            `json:"server_bytes"`
	Span           time.Duration  `json:"span_ns"`
	Found          map[string]int `json:"found"`
	Events         int            `json:"events"`
	Publications   int            `json:"publications"`
	Unparsed       int            `json:"unparsed"`
	Problems       []Problem      `json:"problems,omitempty"`
	Speed          float64        `json:"speed"`
	Amplify        int            `json:"amplify"`
	AmplifyPubs    bool           `json:"amplify_pubs"`
	PubVia         string         `json:"pub_via"` // "tcp" or "http"
	PublisherConns int            `json:"publisher_conns"`

	// The replay.
	SubscriberConns  int           `json:"subscriber_conns"`
	SubsSent         int           `json:"subs_sent"`
	SubsAcknowledged int           `json:"subs_acknowledged"`
	SubsRefused      int           `json:"subs_refused"`
	PubsSent         int           `json:"pubs_sent"`
	Acknowledged     int           `json:"acknowledged"`
	Refused          int           `json:"refused"`
	Unanswered       int           `json:"unanswered"`
	Expected         int           `json:"expected"`  // acknowledged publications times the subscribers holding their topic when sent
	Delivered        int           `json:"delivered"` // live publications the subscribers received
	CatchUp          int           `json:"catch_up"`  // publications received that the sub reply already counted (history, snapshots)
	Lags             int           `json:"lags"`
	Resets           int           `json:"resets"`
	Matched          int           `json:"matched"` // deliveries matched to a replayed publication's reply
	Latency          Latency       `json:"latency_us"`
	NotReplayed      int           `json:"not_replayed"` // events left when --duration ended the run
	Elapsed          time.Duration `json:"elapsed_ns"`
	DryRun           bool          `json:"dry_run,omitempty"` // read, not replayed (Summary)
	ErrorCount       int           `json:"error_count"`
	Errors           []string      `json:"errors,omitempty"`
}

// Latency is publish-to-receive percentiles in microseconds: from just
// before a publication was written (TCP) or its request sent (HTTP) to a
// subscriber's receipt of that topic and seq.
type Latency struct {
	P50  int64 `json:"p50"`
	P90  int64 `json:"p90"`
	P99  int64 `json:"p99"`
	P999 int64 `json:"p999"`
	Max  int64 `json:"max"`
}

func latencyOf(h *hdrhistogram.Histogram) Latency {
	if h.TotalCount() == 0 {
		return Latency{}
	}
	return Latency{
		P50: h.ValueAtQuantile(50), P90: h.ValueAtQuantile(90), P99: h.ValueAtQuantile(99),
		P999: h.ValueAtQuantile(99.9), Max: h.Max(),
	}
}

func (rep *Report) fromCapture(c *Capture, cfg Config) {
	rep.Packets = c.Packets
	rep.ClientStreams = len(c.Streams)
	rep.StreamsBySrc = map[string]int{}
	for _, s := range c.Streams {
		rep.StreamsBySrc[string(s.Source)]++
	}
	rep.ClientBytes, rep.ServerBytes, rep.Span = c.ClientBytes, c.ServerBytes, c.Span
	rep.Found = c.Found
	rep.Events = len(c.Events)
	rep.Publications = c.Publications()
	rep.Unparsed, rep.Problems = c.Unparsed(), c.Problems
	rep.Speed, rep.Amplify, rep.AmplifyPubs = cfg.Speed, cfg.Amplify, cfg.AmplifyPubs
	rep.PubVia = "tcp"
	if cfg.PubHTTP {
		rep.PubVia = "http"
	}
}

// WriteText writes the report for a person.
func (rep *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	var srcs []string
	for k, v := range rep.StreamsBySrc {
		if k == "" {
			k = "not tickfan"
		}
		srcs = append(srcs, fmt.Sprintf("%s %d", k, v))
	}
	slices.Sort(srcs)
	p("capture: %d packets, %d client streams (%s), %d bytes from clients, %d from servers (not parsed), %v between first and last event",
		rep.Packets, rep.ClientStreams, strings.Join(srcs, ", "), rep.ClientBytes, rep.ServerBytes, rep.Span.Round(time.Millisecond))
	var found []string
	for k, v := range rep.Found {
		found = append(found, fmt.Sprintf("%s %d", k, v))
	}
	slices.Sort(found)
	p("found: %s; %d events to replay, %d publications", strings.Join(found, ", "), rep.Events, rep.Publications)
	if rep.Unparsed == 0 {
		p("could not parse: nothing")
	} else {
		p("could not parse: %d", rep.Unparsed)
		for _, pr := range rep.Problems {
			p("  %s: %d, e.g. %s", pr.Kind, pr.Count, strings.Join(pr.Firsts, "; "))
		}
	}
	if rep.DryRun {
		_, err := io.WriteString(w, b.String())
		return err
	}
	speed := fmt.Sprintf("%gx the captured pace", rep.Speed)
	if rep.Speed == 0 {
		speed = "as fast as possible"
	}
	pubs := "once"
	if rep.AmplifyPubs {
		pubs = fmt.Sprintf("%d times", rep.Amplify)
	}
	p("replay: %s, each subscriber %d times, each publisher %s, publishing over %s; %d publisher and %d subscriber connections, %v",
		speed, rep.Amplify, pubs, rep.PubVia, rep.PublisherConns, rep.SubscriberConns, rep.Elapsed.Round(time.Millisecond))
	p("subs: %d sent, %d acknowledged, %d refused", rep.SubsSent, rep.SubsAcknowledged, rep.SubsRefused)
	p("pubs: %d sent, %d acknowledged, %d refused, %d unanswered", rep.PubsSent, rep.Acknowledged, rep.Refused, rep.Unanswered)
	p("delivered: %d of %d expected (acknowledged publications x subscribers holding the topic), %d catch-up, %d lag, %d reset",
		rep.Delivered, rep.Expected, rep.CatchUp, rep.Lags, rep.Resets)
	if rep.Matched > 0 {
		l := rep.Latency
		p("latency publish to receive (%d matched): p50 %d µs, p90 %d µs, p99 %d µs, p99.9 %d µs, max %d µs",
			rep.Matched, l.P50, l.P90, l.P99, l.P999, l.Max)
	}
	if rep.NotReplayed > 0 {
		p("not replayed: %d events left when --duration ended the run", rep.NotReplayed)
	}
	if rep.ErrorCount > 0 {
		p("errors: %d, e.g. %s", rep.ErrorCount, strings.Join(rep.Errors, "; "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Summary is the report of a capture that was read and not replayed.
func Summary(c *Capture, cfg Config) *Report {
	cfg.defaults()
	rep := Report{DryRun: true}
	rep.fromCapture(c, cfg)
	return &rep
}
