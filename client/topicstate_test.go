package client

import (
	"fmt"
	"strings"
	"testing"
)

// TestTopicStateContinuity runs sequences of messages of one topic
// through its state and checks what each one gives the user: the
// publication, nothing (a duplicate), or a resubscription (a hole).
func TestTopicStateContinuity(t *testing.T) {
	pub := func(seq uint64) Message { return Message{Kind: KindPublication, Topic: "x", Seq: seq} }
	snap := func(seq uint64) Message { return Message{Kind: KindPublication, Topic: "x", Seq: seq, Snap: true} }
	reset := func(seq uint64) Message { return Message{Kind: KindReset, Topic: "x", Epoch: "e2", Seq: seq} }
	lag := func(seq uint64) Message { return Message{Kind: KindLag, Topic: "x", Seq: seq} }
	for _, tc := range []struct {
		name      string
		conflated bool
		start     SubResult // a sub reply without since
		msgs      []Message
		want      string
	}{
		{"in order", false, SubResult{E: "e", S: 0}, []Message{pub(1), pub(2), pub(3)}, "pub 1, pub 2, pub 3"},
		{"snapshot at or before the reply's seq", false, SubResult{E: "e", S: 5}, []Message{snap(3), pub(4), pub(5), pub(6)}, "pub 3, pub 4, pub 5, pub 6"},
		{"no snapshot: the reply's seq + 1", false, SubResult{E: "e", S: 5}, []Message{pub(6)}, "pub 6"},
		{"hole", false, SubResult{E: "e", S: 0}, []Message{pub(1), pub(3)}, "pub 1, resubscribe"},
		{"hole after the reply", false, SubResult{E: "e", S: 5}, []Message{pub(7)}, "resubscribe"},
		{"duplicate", false, SubResult{E: "e", S: 0}, []Message{pub(1), pub(2), pub(2), pub(1), pub(3)}, "pub 1, pub 2, dup, dup, pub 3"},
		{"conflated: a jump is no hole", true, SubResult{E: "e", S: 0}, []Message{pub(1), pub(4), pub(9), pub(9)}, "pub 1, pub 4, pub 9, dup"},
		{"reset, then its snapshot", false, SubResult{E: "e", S: 0}, []Message{pub(1), reset(7), snap(7), pub(8)}, "pub 1, reset 7, pub 7, pub 8"},
		{"reset without snapshots: anything after it", false, SubResult{E: "e", S: 0}, []Message{pub(1), reset(7), pub(7), pub(9), pub(10)}, "pub 1, reset 7, dup, pub 9, pub 10"},
		{"lag, then resumed", false, SubResult{E: "e", S: 0}, []Message{pub(1), lag(1), pub(2), pub(3)}, "pub 1, lag 1, resumed 1, pub 2, pub 3"},
		{"lag, then reset", false, SubResult{E: "e", S: 0}, []Message{pub(1), lag(1), reset(50), pub(51)}, "pub 1, lag 1, reset 50, pub 51"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Subscription{}
			st := &topicState{conflated: tc.conflated}
			st.subscribed("x", tc.start, Position{}, false, false, s)
			var got []string
			for _, m := range tc.msgs {
				var evs []Event
				var resub bool
				switch m.Kind {
				case KindPublication:
					evs, resub = st.publication(m, s)
					if len(evs) == 0 && !resub {
						got = append(got, "dup")
					}
				case KindReset:
					evs = st.reset(m, s)
				case KindLag:
					evs = st.lag(m, s)
				}
				for _, ev := range evs {
					got = append(got, describeState(ev))
				}
				if resub {
					got = append(got, "resubscribe")
					break
				}
			}
			if strings.Join(got, ", ") != tc.want {
				t.Fatalf("%s, want %s", strings.Join(got, ", "), tc.want)
			}
		})
	}
}

func describeState(ev Event) string {
	switch e := ev.(type) {
	case Pub:
		return fmt.Sprintf("pub %d", e.Seq)
	case Reset:
		return fmt.Sprintf("reset %d", e.Seq)
	case Lag:
		return fmt.Sprintf("lag %d", e.Seq)
	case Resumed:
		return fmt.Sprintf("resumed %d", e.Seq)
	}
	return fmt.Sprintf("%T", ev)
}
