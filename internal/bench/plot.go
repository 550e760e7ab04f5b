package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// WritePlots writes the PNG plots of rep into dir: latency-<scenario>.png
// (the end-to-end latency CDF of every run of the scenario) and, with
// scaling figures, throughput-replicas.png. It returns the files written.
func WritePlots(rep *Report, dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var files []string
	for _, s := range rep.Scenarios {
		p := plot.New()
		p.Title.Text = "End-to-end latency, " + s.Scenario
		p.X.Label.Text = "latency (ms, log scale)"
		p.Y.Label.Text = "fraction of requests"
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
		p.Y.Min, p.Y.Max = 0, 1
		var lines []any
		for _, pair := range []*Pair{s.Closed, s.Open} {
			if pair == nil {
				continue
			}
			for _, r := range []*Run{pair.Stepwise, pair.Relay} {
				if r == nil || len(r.latencies) == 0 {
					continue
				}
				lines = append(lines, fmt.Sprintf("%s, %s", r.System, pair.Load), cdf(r.latencies, 400))
			}
		}
		if len(lines) == 0 {
			continue
		}
		if err := plotutil.AddLines(p, lines...); err != nil {
			return files, err
		}
		p.Legend.Top, p.Legend.Left = false, false
		p.Legend.YOffs = 2 * vg.Centimeter
		f := filepath.Join(dir, "latency-"+s.Scenario+".png")
		if err := p.Save(16*vg.Centimeter, 10*vg.Centimeter, f); err != nil {
			return files, err
		}
		files = append(files, f)
	}
	if rep.Scaling != nil && len(rep.Scaling.Points) > 0 {
		p := plot.New()
		p.Title.Text = "Throughput vs processor replicas (" + rep.Scaling.Scenario + ", closed loop)"
		p.X.Label.Text = "processor replicas"
		p.Y.Label.Text = "steps/s"
		p.Y.Min = 0
		sw, relay := make(plotter.XYs, 0), make(plotter.XYs, 0)
		for _, pt := range rep.Scaling.Points {
			sw = append(sw, plotter.XY{X: float64(pt.Replicas), Y: pt.StepsPerS})
			relay = append(relay, plotter.XY{X: float64(pt.Replicas), Y: pt.RelayStepsPerS})
		}
		if err := plotutil.AddLinePoints(p, "stepwise", sw, "relay (1 process)", relay); err != nil {
			return files, err
		}
		p.Legend.Top = false
		f := filepath.Join(dir, "throughput-replicas.png")
		if err := p.Save(16*vg.Centimeter, 10*vg.Centimeter, f); err != nil {
			return files, err
		}
		files = append(files, f)
	}
	return files, nil
}

// cdf returns at most points points of the empirical CDF of sorted
// latencies, x in milliseconds.
func cdf(sorted []time.Duration, points int) plotter.XYs {
	n := len(sorted)
	step := max(n/points, 1)
	out := make(plotter.XYs, 0, n/step+1)
	for i := 0; i < n; i += step {
		out = append(out, plotter.XY{X: max(ms(sorted[i]), 0.001), Y: float64(i+1) / float64(n)})
	}
	out = append(out, plotter.XY{X: max(ms(sorted[n-1]), 0.001), Y: 1})
	return out
}
