package bench

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// serverCounters are the /metrics counters whose change over a window the
// results carry (summed over labels), when the server's HTTP port answers.
var serverCounters = []string{
	"tickfan_publications_total",
	"tickfan_deliveries_total",
	"tickfan_lags_total",
	"tickfan_resumes_total",
	"tickfan_resets_total",
	"tickfan_recovered_total",
	"tickfan_closes_total",
}

// scrapeMetrics reads the counters from base/metrics. A server without
// them (another engine, or no HTTP port) gives an error the caller may
// ignore: these figures are extra.
func scrapeMetrics(ctx context.Context, base string) (map[string]float64, error) {
	if base == "" || base == "-" {
		return nil, fmt.Errorf("no --http")
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	want := map[string]bool{}
	for _, n := range serverCounters {
		want[n] = true
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, ok := strings.Cut(line, " ")
		if i := strings.IndexByte(name, '{'); i >= 0 {
			// labels may hold spaces: the value follows the closing brace
			j := strings.LastIndexByte(line, '}')
			if j < 0 {
				continue
			}
			name, rest, ok = line[:i], strings.TrimSpace(line[j+1:]), true
		}
		if !ok || !want[name] {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(f[0], 64); err == nil {
			m[name] += v
		}
	}
	return m, sc.Err()
}

// metricsDelta is after - before for the counters both have.
func metricsDelta(before, after map[string]float64) map[string]float64 {
	if before == nil || after == nil {
		return nil
	}
	d := map[string]float64{}
	for k, v := range after {
		if b, ok := before[k]; ok {
			d[strings.TrimPrefix(k, "tickfan_")] = v - b
		}
	}
	return d
}
