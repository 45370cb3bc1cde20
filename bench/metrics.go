package bench

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
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
	tp := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := tp.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET /metrics: %w", err)
	}
	m := map[string]float64{}
	for _, name := range serverCounters {
		if fam := fams[name]; fam != nil {
			for _, s := range fam.GetMetric() {
				m[name] += s.GetCounter().GetValue() + s.GetGauge().GetValue() + s.GetUntyped().GetValue()
			}
		}
	}
	return m, nil
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
