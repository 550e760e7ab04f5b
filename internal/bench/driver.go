package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/internal/logkey"
	"github.com/stepwise-run/stepwise/kconn"
	"github.com/stepwise-run/stepwise/processors"
	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/topics"
	"github.com/stepwise-run/stepwise/topology"
	"github.com/stepwise-run/stepwise/worker"
)

// Systems a run drives.
const (
	SystemStepwise = "stepwise"
	SystemRelay    = "relay"
)

// Defaults of Config.
const (
	DefaultPartitions        = 6 // divisible by 1, 2 and 3 replicas
	DefaultDuration          = 10 * time.Second
	DefaultDrain             = 60 * time.Second
	DefaultWorkerConcurrency = 64
)

// ErrIncomplete is wrapped by the error of a run whose requests did not all
// complete within the drain time.
var ErrIncomplete = errors.New("stepwise: bench requests did not complete")

// Config of a benchmark. Conn is required; zero values elsewhere take the
// defaults.
type Config struct {
	// Conn reaches the broker; Conn.Prefix starts every topic prefix the
	// benchmark creates (each run gets its own below it).
	Conn              kconn.Config
	Partitions        int32
	ReplicationFactor int16
	Duration          time.Duration // measured window of each run
	// Rate is the arrival rate of the open loop, requests per second; 0
	// runs the closed loop with Concurrency requests in flight.
	Rate float64
	// Concurrency bounds the closed loop; 0 takes the scenario's default
	// (DefaultConcurrency).
	Concurrency       int
	Drain             time.Duration // how long to wait for the last requests
	WorkerConcurrency int           // handlers in flight per queue
	IDPLatency        time.Duration // simulated latency of the idp example
	// Exec, when set, is the command of this binary (os.Executable()): the
	// processors run as `Exec run ...` and the relay as
	// `Exec bench --relay-serve ...`, each an OS process of its own, so
	// their CPU and memory are theirs alone. Nil runs them in this process.
	Exec []string
	// ProcessorArgs are appended to each `stepwise run` command line
	// (e.g. --commit-interval 5ms); in-process runs ignore them.
	ProcessorArgs []string
	Progress      io.Writer // a line per second while a run goes; nil: none
	Logger        *slog.Logger
}

// DefaultConcurrency is the closed loop's bound per scenario: enough
// requests in flight to keep every partition busy, without queueing more
// tasks than the workers can hold for the wide fan-outs.
var DefaultConcurrency = map[string]int{"linear3": 256, "fanout100": 16, "fanout10k": 2, "idp": 32}

func (c Config) withDefaults() Config {
	if c.Conn.Prefix == "" {
		c.Conn.Prefix = "bench."
	}
	if c.Partitions <= 0 {
		c.Partitions = DefaultPartitions
	}
	if c.ReplicationFactor <= 0 {
		c.ReplicationFactor = 1
	}
	if c.Duration <= 0 {
		c.Duration = DefaultDuration
	}
	if c.Drain <= 0 {
		c.Drain = DefaultDrain
	}
	if c.WorkerConcurrency <= 0 {
		c.WorkerConcurrency = DefaultWorkerConcurrency
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Load is how a run offers requests.
type Load struct {
	Rate        float64 // open loop, requests/s; 0: closed loop
	Concurrency int     // closed loop bound
}

func (l Load) String() string {
	if l.Rate > 0 {
		return fmt.Sprintf("open loop %.0f req/s", l.Rate)
	}
	return fmt.Sprintf("closed loop, %d in flight", l.Concurrency)
}

// Run is the outcome of one system on one scenario.
type Run struct {
	System      string  `json:"system"`
	Replicas    int     `json:"replicas,omitempty"`
	Mode        string  `json:"mode"` // "open" or "closed"
	Rate        float64 `json:"rate,omitempty"`
	Concurrency int     `json:"concurrency,omitempty"`
	Prefix      string  `json:"prefix"`

	WindowS      float64 `json:"window_s"`
	Started      int     `json:"started"`
	Completed    int     `json:"completed"`  // measured requests that completed
	Failed       int     `json:"failed"`     // of those, not succeeded
	Unfinished   int     `json:"unfinished"` // started, not completed by the end of the drain
	RequestsPerS float64 `json:"requests_per_s"`
	StepsPerS    float64 `json:"steps_per_s"`
	StepsPerReq  float64 `json:"steps_per_request"`

	Latency  Latency `json:"latency_ms"`
	Overhead Latency `json:"overhead_per_step_ms"`

	// CPU of the processors (or relay) over the window, summed over
	// replicas; CPUShared says it is this whole process's instead.
	CPUSeconds float64 `json:"cpu_s"`
	CPUCores   float64 `json:"cpu_cores"`
	CPUShared  bool    `json:"cpu_shared,omitempty"`
	PeakRSS    int64   `json:"peak_rss_bytes"` // largest replica, from the end of the warm-up to the end of the drain
	// WarmupPeakRSS is the largest replica's peak before the measured
	// window: from its start through the warm-up, which starts two
	// requests on every partition at once (for fanout10k, 12 fan-outs of
	// 10,000 in flight together, not the run's 2).
	WarmupPeakRSS int64   `json:"warmup_peak_rss_bytes"`
	BenchCPUS     float64 `json:"bench_process_cpu_s"`
	BenchPeakRSS  int64   `json:"bench_process_peak_rss_bytes"`

	MaxRecordBytes int           `json:"max_record_bytes"` // largest task, result, completion or state value seen
	State          *StateFigures `json:"state,omitempty"`

	latencies []time.Duration // sorted, for the CDF plot
}

// runner holds what every run of a benchmark shares.
type runner struct {
	cfg Config
	tmp string // definition files for child processors
	seq atomic.Int64
	// procArgs and procEnv are added to the processors of the runs in
	// progress: an observability variant's (observe).
	procArgs, procEnv []string
}

func newRunner(cfg Config) (*runner, error) {
	cfg = cfg.withDefaults()
	if _, err := cfg.Conn.Opts(); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "stepwise-bench-")
	if err != nil {
		return nil, err
	}
	return &runner{cfg: cfg, tmp: tmp}, nil
}

func (r *runner) close() { os.RemoveAll(r.tmp) }

// prefix returns a fresh topic prefix for one run.
func (r *runner) prefix(sc, system string) topology.Prefix {
	return topology.Prefix(fmt.Sprintf("%s%d-%s-%s-%d.", r.cfg.Conn.Prefix, time.Now().Unix(), sc, system, r.seq.Add(1)))
}

func (r *runner) conn(p topology.Prefix) kconn.Config {
	c := r.cfg.Conn
	c.Prefix = p
	return c
}

func (r *runner) client(p topology.Prefix, opts ...kgo.Opt) (*kgo.Client, error) {
	conn := r.conn(p)
	base, err := conn.Opts()
	if err != nil {
		return nil, err
	}
	return kgo.NewClient(append(base, opts...)...)
}

// createTopics creates the topic plan of sc under p.
func (r *runner) createTopics(ctx context.Context, sc *Scenario, p topology.Prefix) error {
	cl, err := r.client(p)
	if err != nil {
		return err
	}
	defer cl.Close()
	return topics.Ensure(ctx, kadm.NewClient(cl), sc.Set.Topics(p), r.cfg.Partitions, r.cfg.ReplicationFactor)
}

// startProcessor starts replica id of sc's processors under p.
func (r *runner) startProcessor(ctx context.Context, sc *Scenario, p topology.Prefix, id string) (system, error) {
	if len(r.cfg.Exec) == 0 {
		proc, err := processors.New(processors.Config{Conn: r.conn(p), Set: sc.Set, ReplicaID: id, Logger: r.cfg.Logger})
		if err != nil {
			return nil, err
		}
		return startInProcess(ctx, proc.Run, func() restoreFigures {
			st := proc.Stats()
			return restoreFigures{restores: int(st.Restores), records: st.RestoredRecords, duration: st.RestoreTime}
		}), nil
	}
	file := filepath.Join(r.tmp, sc.Name+".yaml")
	if err := os.WriteFile(file, sc.YAML, 0o644); err != nil {
		return nil, err
	}
	argv := append(append([]string{}, r.cfg.Exec...), "run", "-f", file, "--replica-id", id, "--log-level", "info")
	argv = append(argv, ConnArgs(r.conn(p))...)
	argv = append(argv, r.cfg.ProcessorArgs...)
	argv = append(argv, r.procArgs...)
	return startChild(argv, append(connEnv(r.cfg.Conn), r.procEnv...), os.Stderr)
}

// startRelay starts the relay of sc under p.
func (r *runner) startRelay(ctx context.Context, sc *Scenario, p topology.Prefix) (system, error) {
	if len(r.cfg.Exec) == 0 {
		return startInProcess(ctx, NewRelay(r.conn(p), sc, r.cfg.Logger).Run, nil), nil
	}
	argv := append(append([]string{}, r.cfg.Exec...), "bench", "--relay-serve", "--scenario", sc.Name)
	argv = append(argv, ConnArgs(r.conn(p))...)
	return startChild(argv, connEnv(r.cfg.Conn), os.Stderr)
}

// ConnArgs returns the command-line flags (kconn.Config.RegisterFlags) that
// reproduce c, except the SASL password, which travels in the environment.
func ConnArgs(c kconn.Config) []string {
	args := []string{"--brokers", joinComma(c.Brokers), "--prefix", string(c.Prefix)}
	add := func(flag, v string) {
		if v != "" {
			args = append(args, flag, v)
		}
	}
	add("--client-id", c.ClientID)
	if c.TLS.Enabled {
		args = append(args, "--tls")
	}
	add("--tls-ca", c.TLS.CAFile)
	add("--tls-cert", c.TLS.CertFile)
	add("--tls-key", c.TLS.KeyFile)
	if c.TLS.InsecureSkipVerify {
		args = append(args, "--tls-insecure-skip-verify")
	}
	add("--sasl-mechanism", c.SASL.Mechanism)
	add("--sasl-user", c.SASL.User)
	return args
}

func connEnv(c kconn.Config) []string {
	if c.SASL.Password == "" {
		return nil
	}
	return []string{kconn.PasswordEnv + "=" + c.SASL.Password}
}

func joinComma(s []string) string {
	var b bytes.Buffer
	for i, v := range s {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(v)
	}
	return b.String()
}

// waitGroupStable waits until group has a member for each of systems and
// is stable. A system that exits meanwhile ends the wait with its own
// error (a child's last output), which says more than the group's state.
func (r *runner) waitGroupStable(ctx context.Context, p topology.Prefix, group string, systems []system, timeout time.Duration) error {
	n := len(systems)
	cl, err := r.client(p)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		for _, s := range systems {
			if err := s.exited(); err != nil {
				return fmt.Errorf("stepwise: group %s: a member did not start: %w", group, err)
			}
		}
		gs, err := adm.DescribeGroups(ctx, group)
		if err == nil {
			if g, ok := gs[group]; ok && g.Err == nil {
				if g.State == "Stable" && len(g.Members) == n {
					return nil
				}
				last = fmt.Sprintf("%s with %d members", g.State, len(g.Members))
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("stepwise: group %s not stable with %d members after %s (last: %s)", group, n, timeout, last)
}

// runOne runs one system on one scenario and measures it.
func (r *runner) runOne(ctx context.Context, sc *Scenario, systemName string, replicas int, load Load) (*Run, error) {
	cfg := r.cfg
	p := r.prefix(sc.Name, systemName)
	if err := r.createTopics(ctx, sc, p); err != nil {
		return nil, err
	}
	tr := newTracker()
	tr.done = make(chan struct{}, signalBuffer)
	var maxRecord atomic.Int64
	noteSize := func(n int) {
		for {
			cur := maxRecord.Load()
			if int64(n) <= cur || maxRecord.CompareAndSwap(cur, int64(n)) {
				return
			}
		}
	}

	// Workers: the Go SDK in this process, every handler timed.
	handlers := sc.Handlers
	if systemName == SystemRelay {
		handlers = sc.RelayHandlers
	}
	stopWorkers, err := r.startWorkers(ctx, p, handlers, tr, noteSize)
	if err != nil {
		return nil, err
	}
	defer stopWorkers()

	// The system under test.
	var systems []system
	stopAll := func() {
		for _, s := range systems {
			if err := s.stop(); err != nil {
				cfg.Logger.Warn("stopping a system under test", logkey.Error, err)
			}
		}
		systems = nil
	}
	defer stopAll()
	group := processors.GroupID(p)
	if systemName == SystemRelay {
		s, err := r.startRelay(ctx, sc, p)
		if err != nil {
			return nil, err
		}
		systems = append(systems, s)
		group = RelayGroup(p)
	} else {
		for i := range replicas {
			s, err := r.startProcessor(ctx, sc, p, "bench-"+strconv.Itoa(i+1))
			if err != nil {
				return nil, err
			}
			systems = append(systems, s)
		}
	}

	// Completions: one read_committed consumer for every request.
	ccancel, err := r.followCompletions(ctx, p, tr, noteSize)
	if err != nil {
		return nil, err
	}
	defer ccancel()

	prod, err := r.client(p, kgo.ProducerLinger(0))
	if err != nil {
		return nil, err
	}
	defer prod.Close()
	var produceErrs atomic.Int64
	start := func(id string, input []byte, at time.Time, measured bool) {
		tr.started(id, at, measured)
		v := startValue(sc.Workflow, id, input)
		prod.Produce(ctx, &kgo.Record{Topic: p.Requests(), Key: []byte(id), Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				produceErrs.Add(1)
				cfg.Logger.Warn("bench start", "request", id, logkey.Error, err)
			}
		})
	}

	if err := r.waitGroupStable(ctx, p, group, systems, 60*time.Second); err != nil {
		return nil, err
	}
	// Warm up: a few requests on every partition, so the group has joined,
	// every partition is restored and every client connected; no more in
	// flight at once than the closed loop's bound, so that the warm-up
	// offers no more load than the run (12 fanout10k requests at once
	// would set the replica's peak memory, not the run).
	warm := 2 * int(cfg.Partitions)
	bound := warmBound(cfg, sc.Name, load, warm)
	for i := range warm {
		for tr.inFlight() >= bound && ctx.Err() == nil {
			select {
			case <-tr.done:
			case <-time.After(20 * time.Millisecond):
			}
		}
		start(fmt.Sprintf("warm-%d", i), sc.Input(i), time.Now(), false)
	}
	if err := waitIdle(ctx, tr, 120*time.Second); err != nil {
		return nil, fmt.Errorf("%s %s warm-up: %w", sc.Name, systemName, err)
	}
	for len(tr.done) > 0 {
		<-tr.done
	}
	warmPeak := peakUsage(systems).peakRSS
	for _, s := range systems {
		if err := s.resetPeak(); err != nil {
			cfg.Logger.Warn("cannot reset the peak resident size; the peak includes the warm-up", logkey.Error, err)
		}
	}

	// Measure.
	run := &Run{System: systemName, Prefix: string(p)}
	if systemName == SystemStepwise {
		run.Replicas = replicas
	}
	u0 := sumUsage(systems)
	self0, _ := procUsage(os.Getpid())
	t0 := time.Now()
	end := t0.Add(cfg.Duration)
	stopProgress := r.progress(sc.Name+" "+systemName, tr, t0)
	n := 0
	startNext := func(at time.Time) {
		n++
		start("r-"+strconv.Itoa(n), sc.Input(n), at, true)
	}
	if load.Rate > 0 {
		run.Mode, run.Rate = "open", load.Rate
		openLoop(ctx, load.Rate, t0, end, startNext)
	} else {
		run.Mode, run.Concurrency = "closed", load.Concurrency
		closedLoop(ctx, tr, load.Concurrency, end, startNext)
	}
	window := time.Since(t0)
	u1 := sumUsage(systems)
	drainErr := waitIdle(ctx, tr, cfg.Drain)
	stopProgress()
	self1, _ := procUsage(os.Getpid())
	peak := peakUsage(systems)
	stopAll()
	ccancel()

	tr.mu.Lock()
	samples := tr.mu.samples
	run.Failed = tr.mu.failed
	run.Unfinished = len(tr.mu.live)
	tr.mu.Unlock()
	run.Started = n
	summarizeSamples(run, samples, t0, window)
	run.CPUSeconds = (u1.cpu - u0.cpu).Seconds()
	run.CPUCores = run.CPUSeconds / window.Seconds()
	run.CPUShared = u1.shared
	run.PeakRSS = peak.peakRSS
	run.WarmupPeakRSS = warmPeak
	run.BenchCPUS = (self1.cpu - self0.cpu).Seconds()
	run.BenchPeakRSS = self1.peakRSS
	if systemName == SystemStepwise {
		st, err := r.readState(ctx, p)
		if err != nil {
			cfg.Logger.Warn("reading the state topic", logkey.Error, err)
		} else {
			run.State = st
			noteSize(st.LargestRecord)
		}
	}
	run.MaxRecordBytes = int(maxRecord.Load())
	if e := produceErrs.Load(); e > 0 {
		return run, fmt.Errorf("stepwise: %d starts could not be produced", e)
	}
	if drainErr != nil {
		return run, fmt.Errorf("%s %s: %w", sc.Name, systemName, drainErr)
	}
	return run, nil
}

// startWorkers runs handlers in this process with the Go SDK, each timed
// by tr and its input and output sizes noted; the function returned stops
// them.
func (r *runner) startWorkers(ctx context.Context, p topology.Prefix, handlers map[string]worker.Handler, tr *tracker, noteSize func(int)) (stop func(), err error) {
	cfg := r.cfg
	w, err := worker.New(worker.WithConn(r.conn(p)), worker.WithLogger(cfg.Logger),
		worker.WithKafkaOpts(kgo.FetchMaxWait(10*time.Millisecond), kgo.ProducerLinger(0)))
	if err != nil {
		return nil, err
	}
	for q, h := range handlers {
		sized := func(ctx context.Context, t *worker.Task) (json.RawMessage, error) {
			noteSize(len(t.Input))
			out, err := h(ctx, t)
			noteSize(len(out))
			return out, err
		}
		w.Handle(q, tr.wrap(sized), worker.Concurrency(cfg.WorkerConcurrency))
	}
	wctx, wcancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := w.Run(wctx); err != nil {
			cfg.Logger.Error("bench workers", logkey.Error, err)
		}
	})
	return func() { wcancel(); wg.Wait() }, nil
}

// followCompletions reads the completions topic (read_committed) into tr
// until the function returned is called.
func (r *runner) followCompletions(ctx context.Context, p topology.Prefix, tr *tracker, noteSize func(int)) (stop func(), err error) {
	comp, err := r.client(p, kgo.ConsumeTopics(p.Completions()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(10*time.Millisecond), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, err
	}
	cctx, ccancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for cctx.Err() == nil {
			fs := comp.PollFetches(cctx)
			now := time.Now()
			fs.EachRecord(func(rec *kgo.Record) {
				noteSize(len(rec.Value))
				tr.completed(string(rec.Key), now, bytes.Contains(rec.Value, []byte(`"status":"succeeded"`)))
			})
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { ccancel(); <-done; comp.Close() }) }, nil
}

// openLoop starts a request at rate per second from t0 until end, each at
// its scheduled time however long the system takes (startNext(at)).
func openLoop(ctx context.Context, rate float64, t0, end time.Time, startNext func(at time.Time)) {
	interval := time.Duration(float64(time.Second) / rate)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	sched := t0
	for now := t0; now.Before(end) && ctx.Err() == nil; now = time.Now() {
		for !sched.After(now) && sched.Before(end) {
			startNext(sched)
			sched = sched.Add(interval)
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
}

// closedLoop keeps concurrency requests in flight until end: a new one
// starts as soon as one completes.
func closedLoop(ctx context.Context, tr *tracker, concurrency int, end time.Time, startNext func(at time.Time)) {
	timer := time.NewTimer(time.Until(end))
	defer timer.Stop()
	for {
		for inflight := tr.inFlight(); inflight < concurrency; inflight++ {
			startNext(time.Now())
		}
		select {
		case <-tr.done:
		case <-timer.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// summarizeSamples fills run's throughput and latency figures from the
// completed requests' samples: throughput counts those completed within
// the measured window (from t0), latencies every one.
func summarizeSamples(run *Run, samples []sample, t0 time.Time, window time.Duration) {
	run.WindowS = window.Seconds()
	lats := make([]time.Duration, 0, len(samples))
	overs := make([]time.Duration, 0, len(samples))
	inWindow, stepsInWindow, steps := 0, 0, 0
	for _, s := range samples {
		lats = append(lats, s.latency)
		overs = append(overs, s.overhead)
		steps += s.steps
		if !s.at.After(t0.Add(window)) {
			inWindow++
			stepsInWindow += s.steps
		}
	}
	run.Completed = len(samples)
	run.RequestsPerS = float64(inWindow) / window.Seconds()
	run.StepsPerS = float64(stepsInWindow) / window.Seconds()
	if len(samples) > 0 {
		run.StepsPerReq = float64(steps) / float64(len(samples))
	}
	run.Latency = Summarize(lats)
	run.Overhead = Summarize(overs)
	run.latencies = lats
}

// waitIdle waits until every started request completed.
func waitIdle(ctx context.Context, tr *tracker, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		left := tr.inFlight()
		if left == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %d still running after %s", ErrIncomplete, left, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func sumUsage(ss []system) usage {
	var u usage
	for _, s := range ss {
		x := s.usage()
		if x.shared {
			return x // one process: counting it per replica would multiply it
		}
		u.cpu += x.cpu
		u.rss += x.rss
		u.peakRSS = max(u.peakRSS, x.peakRSS)
	}
	return u
}

func peakUsage(ss []system) usage { return sumUsage(ss) }

// progress prints a line a second until the returned func is called.
func (r *runner) progress(label string, tr *tracker, t0 time.Time) func() {
	if r.cfg.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		last := 0
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			tr.mu.Lock()
			n := len(tr.mu.samples)
			p50 := tr.mu.hist.quantile(0.5)
			live := len(tr.mu.live)
			tr.mu.Unlock()
			fmt.Fprintf(r.cfg.Progress, "  %-20s %4.0fs  completed %8d  rate %8.0f req/s  p50 %8.2f ms  in flight %6d\n",
				label, time.Since(t0).Seconds(), n, float64(n-last), ms(p50), live)
			last = n
		}
	})
	return func() { close(done); wg.Wait() }
}

// startValue is the requests record of a start of workflow with input (a
// JSON object the scenario built).
func startValue(workflow, id string, input json.RawMessage) []byte {
	v, err := json.Marshal(schemas.NewStart(workflow, 0, id, input))
	if err != nil {
		panic(fmt.Sprintf("stepwise bench: a scenario built an input that is not JSON: %v", err))
	}
	return v
}

// warmBound is how many warm-up requests may be in flight at once: the
// closed loop's bound of the scenario (load's, else the configured, else
// the scenario's default), at most warm.
func warmBound(cfg Config, scenario string, load Load, warm int) int {
	n := load.Concurrency
	if n <= 0 {
		n = cfg.Concurrency
	}
	if n <= 0 {
		n = DefaultConcurrency[scenario]
	}
	if n <= 0 || n > warm {
		n = warm
	}
	return n
}
