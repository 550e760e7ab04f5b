package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/stepwise-run/stepwise/api"
	"github.com/stepwise-run/stepwise/definitions"
	"github.com/stepwise-run/stepwise/metrics"
)

func init() {
	register(command{
		name:    "api",
		summary: "serve the HTTP API and web UI from a view of the state topic",
		run:     runAPI,
	})
}

// runAPI runs the read side: a view of every request built from the state
// topic, the HTTP API and the web UI, until the process is signalled. It
// needs no processor to answer status and lists; starts and cancels are
// written to the requests topic for the processors.
func runAPI(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("api", flag.ContinueOnError)
	var cfg api.Config
	cfg.Conn.RegisterFlags(fs)
	var files fileFlags
	fs.Var(&files, "f", "workflow definition file to apply at start (repeatable; optional: the API follows the definitions topic)")
	fs.StringVar(&cfg.Addr, "http", api.DefaultAddr, "address to serve HTTP on")
	fs.Int64Var(&cfg.MaxBody, "max-body", api.DefaultMaxBody, "largest start body read, bytes; a start must also fit the requests topic's max.message.bytes (413 otherwise)")
	fs.DurationVar(&cfg.MaxWait, "max-wait", api.DefaultMaxWait, "longest ?wait of a start")
	tokensFile := fs.String("tokens-file", "", "file of bearer tokens the API accepts, one \"NAME SCOPES TOKEN\" a line (also $"+api.TokensEnv+")")
	withMetrics := fs.Bool("metrics", false, "export Prometheus metrics at /metrics of --http (no token needed)")
	fs.BoolVar(&cfg.InsecureNoAuth, "insecure-no-auth", false, "serve a non-loopback --http address without any token")
	var level slog.Level
	fs.TextVar(&level, "log-level", slog.LevelInfo, "debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: stepwise api [-f FILE...] [--http ADDR] [flags]\n\n"+
			"Serves the HTTP API (/api/v1, OpenAPI document at /api/v1/openapi.json) and\n"+
			"the web UI (/) from an in-memory view of the state topic, and /healthz,\n"+
			"/readyz (200 once the view has caught up) and with --metrics /metrics.\n"+
			"Run any number of them beside the processors; each reads every partition,\n"+
			"and follows the definitions topic for the workflows and their versions.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return &exitError{code: 2}
	}
	if fs.NArg() > 0 {
		return &exitError{code: 2, msg: fmt.Sprintf("unexpected argument %q; definition files go after -f", fs.Arg(0))}
	}
	var err error
	if cfg.Tokens, err = api.LoadTokens(*tokensFile); err != nil {
		return err
	}
	if *withMetrics {
		cfg.Metrics = metrics.NewRegistry()
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	tp, flush, err := tracerFromEnv(ctx, "stepwise-api", cfg.Logger)
	if err != nil {
		return err
	}
	defer flush()
	cfg.Tracer = tp
	if len(files) > 0 {
		set, err := loadDefinitions(files)
		if err != nil {
			return err
		}
		opts, err := cfg.Conn.Opts()
		if err != nil {
			return err
		}
		out, err := definitions.Publish(ctx, opts, cfg.Conn.Prefix, set, nil, time.Now())
		if err != nil {
			return err
		}
		for _, o := range out {
			cfg.Logger.Info("definition applied", "workflow", o.Workflow, "version", o.Version, "unchanged", o.Unchanged)
		}
	}
	return api.Serve(ctx, cfg)
}
