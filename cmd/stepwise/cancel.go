package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/stepwise-run/stepwise/kconn"
	"github.com/stepwise-run/stepwise/schemas"
)

func init() {
	register(command{
		name:    "cancel",
		summary: "ask for a running request to be cancelled",
		run: func(ctx context.Context, args []string) error {
			return cancelMain(ctx, args, os.Stdout, os.Stderr)
		},
	})
}

func cancelMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		conn    kconn.Config
		reason  string
		timeout time.Duration
	)
	fs := newFlagSet("cancel", stderr,
		"Usage: stepwise cancel ID [--reason TEXT] [flags]\n\n"+
			"Asks the processors to cancel request ID. It returns once the request to\n"+
			"cancel is stored; the request then completes as cancelled, unless it\n"+
			"finished first, and workers running its tasks are told to stop. Exits 3\n"+
			"when ID names no request, 1 when it has already finished.")
	conn.RegisterFlags(fs)
	fs.StringVar(&reason, "reason", "", "why, shown in the completion's error")
	fs.DurationVar(&timeout, "timeout", 30*time.Second, "give up after this long")
	id, err := oneRequestID(fs, args)
	if err != nil {
		return err
	}
	ctx, cl, done, err := dial(ctx, conn, timeout)
	if err != nil {
		return err
	}
	defer done()
	root, err := requestRecord(ctx, cl, id, timeout)
	if err != nil {
		return err
	}
	if root.Status != schemas.Running {
		return &exitError{code: 1, msg: fmt.Sprintf("request %s already %s; nothing to cancel", id, root.Status)}
	}
	if err := cl.Cancel(ctx, id, reason); err != nil {
		return timeoutHint(ctx, err, timeout)
	}
	fmt.Fprintf(stdout, "cancel of %s sent\n", id)
	return nil
}
