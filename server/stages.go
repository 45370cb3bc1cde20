//go:build stagetrace

package server

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// A build with the stagetrace tag times each publication a client's pub
// brings through its loop, stage by stage, when one read holds one pub
// (the hft scenario), and logs the medians at shutdown:
//
//	go build -tags stagetrace -o tickfan-stages ./cmd/tickfan
//
// read: the loop is handed the bytes read (conn.Data); decoded: the pub
// is decoded and checked; published: the engine gave it its seq and put
// it in the loops' inboxes; deliver: the turn takes it to the
// subscribers' outboxes; write and written: around the write to the
// (first) subscriber's socket; acked: the pub's reply written.

var stageNames = [nStages]string{"read", "decoded", "published", "deliver", "write", "written", "acked"}

type stageClock struct {
	at      [nStages]int64
	samples [][nStages]int64
}

const maxStageSamples = 1 << 18

func (l *loop) stageAt(s stage) {
	if s == stRead {
		l.stages.at = [nStages]int64{}
	}
	if l.stages.at[s] == 0 {
		l.stages.at[s] = time.Now().UnixNano()
	}
}

// stageDone keeps the timings of a read that carried a publication all
// the way.
func (l *loop) stageDone() {
	a := l.stages.at
	l.stages.at = [nStages]int64{}
	for _, t := range a {
		if t == 0 {
			return
		}
	}
	if len(l.stages.samples) < maxStageSamples {
		l.stages.samples = append(l.stages.samples, a)
	}
}

func (s *Server) stageReport() {
	var all [][nStages]int64
	for _, l := range s.loops {
		all = append(all, l.stages.samples...)
	}
	if len(all) == 0 {
		s.log.Info("stage timings: no read carried one publication through")
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d publications, µs from the previous stage (p50 / p90 / p99):", len(all))
	for st := stDecoded; st < nStages; st++ {
		d := make([]float64, len(all))
		for i, a := range all {
			d[i] = float64(a[st]-a[st-1]) / 1e3
		}
		slices.Sort(d)
		q := func(p float64) float64 { return d[int(p*float64(len(d)-1))] }
		fmt.Fprintf(&b, " %s %.1f / %.1f / %.1f;", stageNames[st], q(.5), q(.9), q(.99))
	}
	s.log.Info("stage timings: " + b.String())
}
