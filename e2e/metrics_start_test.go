package e2e

import (
	"strconv"
	"testing"
)

// TestMetricsAtZeroFromStart holds the labelled series whose labels are a
// known set to exist, at 0, on a server that has seen nothing yet: a query
// or an alert on them has a value before the first event.
func TestMetricsAtZeroFromStart(t *testing.T) {
	t.Parallel()
	n := start(t)
	m := n.metrics(t)
	want := map[string][]string{
		"tickfan_rejected_connections_total": {"reason", "max_conns", "reason", "per_ip", "reason", "ip_rate"},
		"tickfan_connections":                {"transport", "tcp", "transport", "ws"},
	}
	for _, op := range []string{"sub", "unsub", "pull", "pub", "ping", "auth", "refresh", "other"} {
		want["tickfan_commands_total"] = append(want["tickfan_commands_total"], "op", op)
	}
	for _, code := range []int{400, 401, 403, 404, 409, 410, 413, 429, 500, 503} {
		want["tickfan_errors_total"] = append(want["tickfan_errors_total"], "code", strconv.Itoa(code))
	}
	for _, code := range []int{1000, 1002, 1007, 1009, 4000, 4001, 4002, 4003, 4004, 4005, 4006, 4007} {
		want["tickfan_closes_total"] = append(want["tickfan_closes_total"], "code", strconv.Itoa(code))
	}
	for name, pairs := range want {
		for i := 0; i+1 < len(pairs); i += 2 {
			label, value := pairs[i], pairs[i+1]
			found := false
			for _, mt := range m[name].GetMetric() {
				if len(mt.GetLabel()) == 1 && hasLabels(mt, []string{label, value}) {
					found = true
					if v := mt.GetCounter().GetValue() + mt.GetGauge().GetValue(); v != 0 {
						t.Errorf("%s{%s=%q} = %v on a fresh server, want 0", name, label, value, v)
					}
				}
			}
			if !found {
				t.Errorf("%s{%s=%q} missing from a fresh server's /metrics", name, label, value)
			}
		}
	}
}
