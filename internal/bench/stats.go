package bench

import (
	"math"
	"slices"
	"time"
)

// Percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method: the smallest value with at least p% of the samples
// at or below it. It returns 0 for no samples.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// Latency is a distribution summary in milliseconds, as the JSON report
// carries it.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
	N    int     `json:"n"`
}

// Summarize sorts samples in place and summarises them.
func Summarize(samples []time.Duration) Latency {
	if len(samples) == 0 {
		return Latency{}
	}
	slices.Sort(samples)
	var sum time.Duration
	for _, s := range samples {
		sum += s
	}
	return Latency{
		P50:  ms(Percentile(samples, 50)),
		P90:  ms(Percentile(samples, 90)),
		P99:  ms(Percentile(samples, 99)),
		Max:  ms(samples[len(samples)-1]),
		Mean: ms(sum / time.Duration(len(samples))),
		N:    len(samples),
	}
}

// ms converts d to fractional milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// interval is a span of time a worker handler ran, in nanoseconds since
// the driver's epoch.
type interval struct{ from, to int64 }

// busyTime returns the length of the union of spans: the time during which
// at least one of them was running. Parallel handlers of one fan-out count
// once, so what remains of the end-to-end time is time spent outside
// workers. It reorders spans.
func busyTime(spans []interval) time.Duration {
	if len(spans) == 0 {
		return 0
	}
	slices.SortFunc(spans, func(a, b interval) int {
		switch {
		case a.from < b.from:
			return -1
		case a.from > b.from:
			return 1
		}
		return 0
	})
	var total int64
	cur := spans[0]
	for _, s := range spans[1:] {
		if s.from > cur.to {
			total += cur.to - cur.from
			cur = s
			continue
		}
		cur.to = max(cur.to, s.to)
	}
	total += cur.to - cur.from
	return time.Duration(total)
}

// ratio returns a/b, or 0 when b is 0 (no baseline to compare with).
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
