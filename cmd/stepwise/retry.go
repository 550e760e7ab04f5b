package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/stepwise-run/stepwise/client"
	"github.com/stepwise-run/stepwise/definitions"
	"github.com/stepwise-run/stepwise/kconn"
	"github.com/stepwise-run/stepwise/schemas"
)

func init() {
	register(command{
		name:    "retry",
		summary: "run a failed or cancelled request again from what did not succeed",
		run: func(ctx context.Context, args []string) error {
			return retryMain(ctx, args, os.Stdout, os.Stderr)
		},
	})
}

// Exit status of retry and cancel for an id that names no request.
const exitUnknown = 3

func retryMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		conn    kconn.Config
		from    string
		timeout time.Duration
	)
	fs := newFlagSet("retry", stderr,
		"Usage: stepwise retry ID [--from STEP] [flags]\n\n"+
			"Runs failed or cancelled request ID again, keeping its id and definition\n"+
			"version: the steps that failed or were interrupted run again (in a fan-out,\n"+
			"only the children that did not succeed), and the outputs of the steps that\n"+
			"succeeded are kept. --from STEP also runs that top-level step and every\n"+
			"step downstream of it again. Exits 3 when ID names no request, 1 when it\n"+
			"cannot be retried (running, succeeded, or STEP not usable).")
	conn.RegisterFlags(fs)
	fs.StringVar(&from, "from", "", "top-level step to run again from, with everything downstream of it")
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
	if root.Status != schemas.StatusFailed && root.Status != schemas.StatusCancelled {
		return &exitError{code: 1, msg: fmt.Sprintf("request %s is %s; only a failed or cancelled request can be retried", id, root.Status)}
	}
	if from != "" {
		opts, err := conn.Opts()
		if err != nil {
			return err
		}
		cat := definitions.NewCatalog()
		if err := definitions.ReadAll(ctx, opts, conn.Prefix, cat, nil); err != nil {
			return timeoutHint(ctx, err, timeout)
		}
		wf, _, err := cat.Resolve(root.Workflow, root.DefinitionVersion())
		if err != nil {
			return err
		}
		if _, err := wf.Graph.RetryFrom(from); err != nil {
			return &exitError{code: 1, msg: err.Error()}
		}
	}
	if err := cl.Retry(ctx, id, root.Run(), from); err != nil {
		return timeoutHint(ctx, err, timeout)
	}
	fmt.Fprintf(stdout, "retry of %s sent: run %d of workflow %s version %d\n", id, root.Run()+1, root.Workflow, root.DefinitionVersion())
	return nil
}

// requestRecord reads the state record of request id; an id that names
// no request is an error with exit status exitUnknown.
func requestRecord(ctx context.Context, cl *client.Client, id string, timeout time.Duration) (*schemas.Record, error) {
	st, err := requestStatus(ctx, cl, id, timeout)
	if err != nil {
		return nil, err
	}
	return st.Request, nil
}

// requestStatus reads the state records of request id and its fan-out
// children; an id that names no request is an error with exit status
// exitUnknown.
func requestStatus(ctx context.Context, cl *client.Client, id string, timeout time.Duration) (*client.Status, error) {
	st, err := cl.Get(ctx, id)
	if errors.Is(err, client.ErrExpired) {
		return nil, &exitError{code: exitUnknown, msg: fmt.Sprintf("request %q expired: it finished and was forgotten after its retention", id)}
	}
	if errors.Is(err, client.ErrNotFound) {
		return nil, &exitError{code: exitUnknown, msg: fmt.Sprintf("unknown request %q (never started, or forgotten after its retention)", id)}
	}
	if err != nil {
		return nil, timeoutHint(ctx, err, timeout)
	}
	return st, nil
}
