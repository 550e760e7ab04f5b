// Command chaosworker is the Go worker process of the chaos soak
// (integration/chaos): the steps of its linear3 and fanout100 workflows and
// the idp example's steps except ocr (Python) and classify (TypeScript).
// Every answer depends on the task's input only, so the soak's checker
// knows each request's output in advance. Each task it finishes is logged
// ("step done", with request, step and attempt) on stderr: the execution
// log the checker counts re-runs from.
//
//	chaosworker --brokers 127.0.0.1:14092 --prefix chaos.x.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/examples/idp"
	"github.com/stepwise-run/stepwise/kconn"
	"github.com/stepwise-run/stepwise/worker"
)

// Queues of the soak's own workflows (integration/chaos/workflows.yaml).
const (
	queueLinearA  = "l3-a"
	queueLinearB  = "l3-b"
	queueLinearC  = "l3-c"
	queueFanSplit = "fan-split"
	queueFanWork  = "fan-work"
	queueFanJoin  = "fan-join"
	fanWidth      = 100
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "chaosworker: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	fs := flag.NewFlagSet("chaosworker", flag.ContinueOnError)
	var conn kconn.Config
	conn.RegisterFlags(fs)
	session := fs.Duration("session-timeout", 6*time.Second, "consumer group session timeout: how soon a killed worker's partitions move")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	w, err := worker.New(worker.WithConn(conn), worker.WithLogger(log),
		worker.WithKafkaOpts(kgo.SessionTimeout(*session), kgo.HeartbeatInterval(*session/6)))
	if err != nil {
		return err
	}
	w.Use(worker.Logging(log))
	for q, h := range handlers() {
		w.Handle(q, h)
	}
	log.Info("chaos worker running", "pid", os.Getpid())
	return w.Run(ctx)
}

// handlers are the worker's handlers by queue.
func handlers() map[string]worker.Handler {
	echo := func(_ context.Context, t *worker.Task) (json.RawMessage, error) { return t.Input, nil }
	hs := map[string]worker.Handler{
		queueLinearA: echo, queueLinearB: echo, queueLinearC: echo,
		queueFanSplit: func(context.Context, *worker.Task) (json.RawMessage, error) {
			items := make([]int, fanWidth)
			for i := range items {
				items[i] = i
			}
			return worker.JSON(map[string]any{"items": items})
		},
		queueFanWork: func(_ context.Context, t *worker.Task) (json.RawMessage, error) {
			var in struct {
				Item int `json:"item"`
			}
			if err := t.Decode(&in); err != nil {
				return nil, worker.Permanent(err)
			}
			// Under the singular key: the join gathers each child's
			// "item" into its "items" list (README, "What each step
			// receives").
			return worker.JSON(map[string]any{"item": map[string]int{"square": in.Item * in.Item}})
		},
		queueFanJoin: func(_ context.Context, t *worker.Task) (json.RawMessage, error) {
			var in struct {
				Items []struct {
					Square int `json:"square"`
				} `json:"items"`
			}
			if err := t.Decode(&in); err != nil {
				return nil, worker.Permanent(err)
			}
			sum := 0
			for _, it := range in.Items {
				sum += it.Square
			}
			return worker.JSON(map[string]any{"joined": len(in.Items), "sum": sum})
		},
	}
	for q, h := range idp.Handlers(idp.WithLatency(0)) {
		if q != idp.QueueOCR && q != idp.QueueClassify {
			hs[q] = h
		}
	}
	return hs
}
