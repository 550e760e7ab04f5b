// Command echoworker is the worker process of the integration suite's fault
// tests: a Go SDK worker that answers every task of the given queues with
// its input plus "<step>": attempt, after an optional delay, so that tests
// can kill it with tasks in hand.
//
// It reads tasks from the tasks.<queue> topics of --prefix and writes
// results to the partition each task names, as every worker does (see
// schemas/PROTOCOL.md). Connection flags are those of `stepwise run`
// (package kconn).
//
//	echoworker --brokers 127.0.0.1:9092 --prefix it.x. --queues a,b,c --delay 20ms
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/kconn"
	"github.com/stepwise-run/stepwise/metrics"
	"github.com/stepwise-run/stepwise/worker"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "echoworker: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	fs := flag.NewFlagSet("echoworker", flag.ContinueOnError)
	var conn kconn.Config
	conn.RegisterFlags(fs)
	queues := fs.String("queues", "", "comma-separated queues to answer (required)")
	delay := fs.Duration("delay", 0, "time each task takes")
	concurrency := fs.Int("concurrency", worker.DefaultConcurrency, "tasks of each queue handled at once")
	metricsAddr := fs.String("metrics-addr", "", "serve the worker's Prometheus metrics at http://ADDR/metrics")
	session := fs.Duration("session-timeout", 6*time.Second, "consumer group session timeout: how soon a killed worker's partitions move")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	if *queues == "" {
		return fmt.Errorf("--queues is required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	opts := []worker.Option{}
	if *metricsAddr != "" {
		reg := metrics.NewRegistry()
		opts = append(opts, worker.WithMetrics(reg))
		ln, err := net.Listen("tcp", *metricsAddr)
		if err != nil {
			return err
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", metrics.Handler(reg))
		go func() { _ = http.Serve(ln, mux) }()
	}
	w, err := worker.New(append(opts,
		worker.WithConn(conn),
		worker.WithLogger(log),
		worker.WithCommitInterval(100*time.Millisecond),
		// The SDK keeps the client's 45 s session by default; a killed
		// worker's tasks would wait that long for another worker.
		worker.WithKafkaOpts(kgo.SessionTimeout(*session), kgo.HeartbeatInterval(*session/6)),
	)...)
	if err != nil {
		return err
	}
	for _, q := range strings.Split(*queues, ",") {
		w.Handle(strings.TrimSpace(q), echo(*delay), worker.Concurrency(*concurrency))
	}
	log.Info("echo worker running", "queues", *queues, "delay", *delay, "pid", os.Getpid())
	return w.Run(ctx)
}

// echo answers with the task's input plus "<step>": attempt.
func echo(delay time.Duration) worker.Handler {
	return func(ctx context.Context, t *worker.Task) (json.RawMessage, error) {
		if delay > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(delay):
			}
		}
		var out map[string]any
		if err := t.Decode(&out); err != nil {
			return nil, worker.Permanent(err)
		}
		if out == nil {
			out = map[string]any{}
		}
		out[t.Step] = t.Attempt
		return worker.JSON(out)
	}
}
