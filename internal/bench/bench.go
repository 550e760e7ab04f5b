package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/stepwise-run/stepwise/internal/logkey"
)

// Loads of a plan.
const (
	// LoadAuto runs the closed loop, then the open loop at half the
	// maximum Stepwise reached.
	LoadAuto = "auto"
	// LoadClosed runs the closed loop only.
	LoadClosed = "closed"
	// LoadOpen runs the open loop at Plan.Rate only.
	LoadOpen = "open"
)

// Plan says what one benchmark runs.
type Plan struct {
	Scenarios []string // names; "all" expands to ScenarioNames
	Load      string   // LoadAuto, LoadClosed or LoadOpen
	Rate      float64  // requests/s of LoadOpen
	// Replicas lists the processor counts of the scaling figures (linear3,
	// closed loop); empty: none.
	Replicas []int
	// Restore is the number of in-flight requests of the restore and
	// memory figures; 0: none.
	Restore int
	// Observe lists the observability variants (ObserveVariants) of
	// linear3's closed loop to run one after the other; the first should
	// be ObserveOff, which the others are compared with. Empty: none.
	Observe []string
	// Command is the command line, for the report.
	Command string
	// Embedded says the broker is the in-process one (the targets differ).
	Embedded bool
	Broker   string
}

// ErrPlan is wrapped by the errors of a plan that cannot run.
var ErrPlan = errors.New("stepwise: invalid bench plan")

// Execute runs plan and returns its report. A scenario that fails is
// recorded in Report.Errors and the others still run; the error returned
// joins those failures.
func Execute(ctx context.Context, cfg Config, plan Plan) (*Report, error) {
	var names []string
	if len(plan.Scenarios) > 0 || len(plan.Observe) == 0 {
		var err error
		if names, err = expand(plan.Scenarios); err != nil {
			return nil, err
		}
	}
	switch plan.Load {
	case "":
		plan.Load = LoadAuto
	case LoadAuto, LoadClosed:
	case LoadOpen:
		if plan.Rate <= 0 {
			return nil, fmt.Errorf("%w: the open loop needs a rate above 0", ErrPlan)
		}
	default:
		return nil, fmt.Errorf("%w: load %q (want auto, closed or open)", ErrPlan, plan.Load)
	}
	observe, err := parseObserve(plan.Observe)
	if err != nil {
		return nil, err
	}
	r, err := newRunner(cfg)
	if err != nil {
		return nil, err
	}
	defer r.close()
	rep := &Report{
		Started: time.Now(), Command: plan.Command, Broker: plan.Broker, Embedded: plan.Embedded,
		Machine: DescribeMachine(),
		Settings: map[string]string{
			"duration":           r.cfg.Duration.String(),
			"partitions":         fmt.Sprint(r.cfg.Partitions),
			"worker_concurrency": fmt.Sprint(r.cfg.WorkerConcurrency),
			"load":               plan.Load,
			"processes":          fmt.Sprint(len(r.cfg.Exec) > 0),
			"idp_latency":        r.cfg.IDPLatency.String(),
		},
	}
	var errs []error
	fail := func(err error) {
		errs = append(errs, err)
		rep.Errors = append(rep.Errors, err.Error())
		r.cfg.Logger.Error("bench", logkey.Error, err)
	}
	for _, name := range names {
		if ctx.Err() != nil {
			break
		}
		sr, err := r.scenario(ctx, name, plan)
		if sr != nil {
			rep.Scenarios = append(rep.Scenarios, sr)
		}
		if err != nil {
			fail(err)
		}
	}
	if (len(plan.Replicas) > 0 || plan.Restore > 0) && ctx.Err() == nil {
		rep.Scaling = &Scaling{Scenario: "linear3"}
		if len(plan.Replicas) > 0 {
			pts, err := r.replicas(ctx, plan.Replicas, rep)
			rep.Scaling.Points = pts
			if err != nil {
				fail(err)
			}
		}
		if plan.Restore > 0 && ctx.Err() == nil {
			res, err := r.restore(ctx, plan.Restore)
			rep.Scaling.Restore = res
			if err != nil {
				fail(err)
			}
		}
	}
	if len(observe) > 0 && ctx.Err() == nil {
		obs, err := r.observe(ctx, observe)
		rep.Observability = obs
		if err != nil {
			fail(err)
		}
	}
	rep.Machine.LoadAfter = loadAvg()
	rep.Targets = Targets(rep)
	return rep, errors.Join(errs...)
}

// expand resolves "all" and checks the names.
func expand(names []string) ([]string, error) {
	var out []string
	for _, n := range names {
		for part := range strings.SplitSeq(n, ",") {
			part = strings.TrimSpace(part)
			switch {
			case part == "all":
				out = append(out, ScenarioNames...)
			case slices.Contains(ScenarioNames, part):
				out = append(out, part)
			case part != "":
				return nil, fmt.Errorf("%w %q (known: %s, all)", ErrUnknownScenario, part, strings.Join(ScenarioNames, ", "))
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no scenario", ErrPlan)
	}
	return slices.Compact(out), nil
}

// scenario runs both systems on one scenario under the plan's loads.
func (r *runner) scenario(ctx context.Context, name string, plan Plan) (*ScenarioReport, error) {
	sc, err := ScenarioByName(name, r.cfg.IDPLatency)
	if err != nil {
		return nil, err
	}
	sr := &ScenarioReport{Scenario: name, StepsPerRequest: sc.Steps(), RecordsPerReq: sc.Records()}
	conc := r.cfg.Concurrency
	if conc <= 0 {
		conc = DefaultConcurrency[name]
	}
	pair := func(load Load) (*Pair, error) {
		sw, err := r.runOne(ctx, sc, SystemStepwise, 1, load)
		if err != nil {
			return newPair(load, sw, nil), err
		}
		rl, err := r.runOne(ctx, sc, SystemRelay, 1, load)
		return newPair(load, sw, rl), err
	}
	defer sr.fill()
	if plan.Load != LoadOpen {
		if sr.Closed, err = pair(Load{Concurrency: conc}); err != nil {
			return sr, err
		}
	}
	rate := plan.Rate
	switch plan.Load {
	case LoadClosed:
		return sr, nil
	case LoadAuto:
		// Half the maximum: the load the latency targets are set at.
		rate = sr.Closed.Stepwise.RequestsPerS / 2
		if rate <= 0 {
			return sr, fmt.Errorf("stepwise: %s: no request completed in the closed loop", name)
		}
	}
	sr.Open, err = pair(Load{Rate: rate})
	return sr, err
}

// replicas measures the closed-loop throughput of linear3 with each
// processor count, against one relay run.
func (r *runner) replicas(ctx context.Context, counts []int, rep *Report) ([]ReplicaPoint, error) {
	sc, err := ScenarioByName("linear3", r.cfg.IDPLatency)
	if err != nil {
		return nil, err
	}
	conc := r.cfg.Concurrency
	if conc <= 0 {
		conc = DefaultConcurrency["linear3"]
	}
	load := Load{Concurrency: conc}
	relay, err := r.runOne(ctx, sc, SystemRelay, 1, load)
	if err != nil {
		return nil, err
	}
	var pts []ReplicaPoint
	for _, n := range counts {
		run, err := r.runOne(ctx, sc, SystemStepwise, n, load)
		if err != nil {
			return pts, err
		}
		pts = append(pts, ReplicaPoint{
			Replicas: n, StepsPerS: run.StepsPerS, RequestsPerS: run.RequestsPerS,
			RelayStepsPerS: relay.StepsPerS, Ratio: ratio(run.StepsPerS, relay.StepsPerS),
			CPUCores: run.CPUCores, PeakRSS: run.PeakRSS,
		})
	}
	return pts, nil
}
