package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/stepwise-run/stepwise/examples/idp"
	"github.com/stepwise-run/stepwise/internal/bench"
	"github.com/stepwise-run/stepwise/internal/devbroker"
	"github.com/stepwise-run/stepwise/kconn"
)

func init() {
	register(command{
		name:    "bench",
		summary: "measure Stepwise against a relay over the same Kafka hops, side by side",
		run: func(ctx context.Context, args []string) error {
			return benchMain(ctx, args, os.Stdout, os.Stderr)
		},
	})
}

func benchMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg        bench.Config
		conn       kconn.Config
		scenario   string
		embedded   bool
		rate       string
		replicas   string
		restore    int
		jsonFile   string
		outDir     string
		inProcess  bool
		relayServe bool
		level      slog.Level
		partitions int
		observe    string
	)
	conn.RegisterFlags(fs)
	fs.StringVar(&scenario, "scenario", "linear3", "linear3, fanout100, fanout10k, idp, a comma-separated list, or all")
	fs.BoolVar(&embedded, "embedded", false, "run an in-process broker (the default unless --brokers is given)")
	fs.DurationVar(&cfg.Duration, "duration", bench.DefaultDuration, "measured window of each run")
	fs.StringVar(&rate, "rate", bench.LoadAuto, "open-loop arrival rate in requests/s; 0: closed loop only (maximum throughput); auto: closed loop, then open loop at half the maximum Stepwise reached")
	fs.IntVar(&cfg.Concurrency, "concurrency", 0, "closed loop: requests in flight (default per scenario: linear3 256, fanout100 16, fanout10k 2, idp 32)")
	fs.StringVar(&replicas, "replicas", "", "processor counts for the scaling figures, e.g. 1,2,3 (linear3, closed loop)")
	fs.StringVar(&observe, "observe", "", "also run linear3 (closed loop) once per observability variant of the processors, e.g. off,metrics,trace100,trace1 (all = metrics and tracing at 100 %); without --scenario, only these")
	fs.IntVar(&restore, "restore", 0, "in-flight requests for the restore and memory figures, e.g. 100000 (0: skip)")
	fs.StringVar(&jsonFile, "json", "", "write the JSON report to this file")
	fs.StringVar(&outDir, "out", "", "write report.json, summary.md and the PNG plots into this directory")
	fs.IntVar(&partitions, "partitions", bench.DefaultPartitions, "partitions of every topic created")
	fs.IntVar(&cfg.WorkerConcurrency, "worker-concurrency", bench.DefaultWorkerConcurrency, "handlers in flight per queue in the echo workers")
	fs.DurationVar(&cfg.IDPLatency, "idp-latency", idp.DefaultLatency, "simulated latency of an idp step (OCR: 4x)")
	fs.DurationVar(&cfg.Drain, "drain", bench.DefaultDrain, "how long to wait for the last requests of a run")
	fs.BoolVar(&inProcess, "in-process", false, "run processors and relay in this process instead of as child processes (CPU and memory are then the whole process's)")
	fs.BoolVar(&relayServe, "relay-serve", false, "internal: run the relay of --scenario until SIGTERM (the bench starts it this way)")
	fs.TextVar(&level, "log-level", slog.LevelWarn, "debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: stepwise bench --scenario NAME [--embedded | --brokers ADDR] [--duration D] [--rate R] [--json FILE] [--out DIR]\n\n"+
			"Runs each scenario through Stepwise (processor replicas as separate processes)\n"+
			"and through a relay that moves the same records over the same Kafka hops with\n"+
			"no state, no state machine and no transactions, one after the other with the\n"+
			"same echo workers and client settings, and reports both with their ratios.\n"+
			"Every run uses fresh topics under its own prefix (--prefix, default bench.).\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return &exitError{code: 2}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["prefix"] {
		conn.Prefix = "bench."
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if relayServe {
		sc, err := bench.ScenarioByName(scenario, cfg.IDPLatency)
		if err != nil {
			return err
		}
		return bench.NewRelay(conn, sc, log).Run(ctx)
	}
	if fs.NArg() > 0 {
		return &exitError{code: 2, msg: fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	if embedded && set["brokers"] {
		return &exitError{code: 2, msg: "--embedded and --brokers exclude each other"}
	}
	embedded = !set["brokers"]
	plan := bench.Plan{
		Scenarios: []string{scenario}, Restore: restore, Embedded: embedded,
		Command: "stepwise bench " + strings.Join(args, " "),
	}
	if observe != "" {
		plan.Observe = []string{observe}
		if !set["scenario"] {
			plan.Scenarios = nil
		}
	}
	var err error
	if plan.Load, plan.Rate, err = parseLoad(rate); err != nil {
		return err
	}
	if plan.Replicas, err = parseReplicas(replicas); err != nil {
		return err
	}
	if partitions < 1 {
		return &exitError{code: 2, msg: "--partitions must be at least 1"}
	}
	cfg.Partitions = int32(partitions)

	if embedded {
		// The cleaner is held off, as a real broker holds off compacting
		// the active segment: the state read back after each run still
		// holds every version the processors wrote.
		b, err := devbroker.Start(devbroker.WithAddr("127.0.0.1:0"), devbroker.WithLogger(log), devbroker.WithCleanerBackoff(time.Hour))
		if err != nil {
			return err
		}
		defer b.Close()
		prefix := conn.Prefix
		conn = b.Conn(prefix)
		plan.Broker = "embedded (kfake, in the bench process) on " + strings.Join(b.Addrs(), ",")
	} else {
		plan.Broker = "Kafka at " + strings.Join(conn.Brokers, ",")
	}
	cfg.Conn = conn
	cfg.Logger = log
	cfg.Progress = stderr
	if !inProcess {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("stepwise: cannot find this binary to run processors as processes (use --in-process): %w", err)
		}
		cfg.Exec = []string{exe}
	}
	fmt.Fprintf(stderr, "stepwise bench: %s; broker: %s\n", scenario, plan.Broker)
	rep, runErr := bench.Execute(ctx, cfg, plan)
	if rep == nil {
		return runErr
	}
	if err := writeBenchReports(rep, stdout, stderr, jsonFile, outDir); err != nil {
		return err
	}
	return runErr
}

// parseLoad reads --rate: auto, 0 (the closed loop only) or an open-loop
// rate in requests/s.
func parseLoad(rate string) (string, float64, error) {
	if rate == bench.LoadAuto {
		return bench.LoadAuto, 0, nil
	}
	r, err := strconv.ParseFloat(rate, 64)
	if err != nil || r < 0 {
		return "", 0, &exitError{code: 2, msg: fmt.Sprintf("--rate %q: want a number of requests/s, 0, or auto", rate)}
	}
	if r == 0 {
		return bench.LoadClosed, 0, nil
	}
	return bench.LoadOpen, r, nil
}

// parseReplicas reads --replicas, a comma-separated list of counts.
func parseReplicas(list string) ([]int, error) {
	var out []int
	for part := range strings.SplitSeq(list, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		n, err := strconv.Atoi(part)
		if err != nil || n < 1 {
			return nil, &exitError{code: 2, msg: fmt.Sprintf("--replicas: %q is not a replica count", part)}
		}
		out = append(out, n)
	}
	return out, nil
}

// writeBenchReports writes the report as Markdown to stdout, as JSON to
// jsonFile, and with its plots into outDir (each when named).
func writeBenchReports(rep *bench.Report, stdout, stderr io.Writer, jsonFile, outDir string) error {
	bench.WriteMarkdown(stdout, rep)
	if jsonFile != "" {
		if err := writeReport(jsonFile, func(w io.Writer) error { return bench.WriteJSON(w, rep) }); err != nil {
			return err
		}
	}
	if outDir == "" {
		return nil
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	if err := writeReport(filepath.Join(outDir, "report.json"), func(w io.Writer) error { return bench.WriteJSON(w, rep) }); err != nil {
		return err
	}
	if err := writeReport(filepath.Join(outDir, "summary.md"), func(w io.Writer) error { bench.WriteMarkdown(w, rep); return nil }); err != nil {
		return err
	}
	files, err := bench.WritePlots(rep, outDir)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "wrote %s: report.json, summary.md and %d plots\n", outDir, len(files))
	return nil
}

func writeReport(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
