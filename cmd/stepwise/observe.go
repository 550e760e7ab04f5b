package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/kconn"
	"github.com/stepwise-run/stepwise/metrics"
	"github.com/stepwise-run/stepwise/processors"
	"github.com/stepwise-run/stepwise/topology"
)

// lagCollector returns a function that keeps stepwise_consumer_lag up to
// date on reg for the processors' group and the workers' group of every
// queue of set, until its context ends.
func lagCollector(conn kconn.Config, set *topology.Set, reg prometheus.Registerer, log *slog.Logger) (func(context.Context) error, error) {
	opts, err := conn.Opts()
	if err != nil {
		return nil, err
	}
	groups := []string{processors.GroupID(conn.Prefix)}
	for _, q := range set.Queues() {
		groups = append(groups, conn.Prefix.WorkerGroup(q))
	}
	return func(ctx context.Context) error {
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			return fmt.Errorf("stepwise: lag client: %w", err)
		}
		defer cl.Close()
		metrics.NewLagCollector(reg, kadm.NewClient(cl), opts, groups, log).Run(ctx)
		return nil
	}, nil
}

// runAll runs main and the side tasks until main returns or one of them
// fails; the others are then stopped and waited for. main's result wins.
func runAll(ctx context.Context, main func(context.Context) error, side ...func(context.Context) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for _, f := range side {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil && ctx.Err() == nil {
				cancel(err)
			}
		}()
	}
	err := main(ctx)
	cancel(nil)
	wg.Wait()
	if cause := context.Cause(ctx); err == nil && cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause
	}
	return err
}
