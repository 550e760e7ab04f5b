package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/stepwise-run/stepwise/client"
	"github.com/stepwise-run/stepwise/definitions"
	"github.com/stepwise-run/stepwise/kconn"
	"github.com/stepwise-run/stepwise/processors/machine"
	"github.com/stepwise-run/stepwise/schemas"
)

func init() {
	register(command{
		name:    "signal",
		summary: "send a signal to a request: the steps waiting for it go on",
		run: func(ctx context.Context, args []string) error {
			return signalMain(ctx, args, os.Stdin, os.Stdout, os.Stderr)
		},
	})
}

func signalMain(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var (
		conn    kconn.Config
		data    string
		step    string
		timeout time.Duration
	)
	fs := newFlagSet("signal", stderr,
		"Usage: stepwise signal ID NAME [--data JSON|@FILE|@-] [--step PATH] [flags]\n\n"+
			"Sends signal NAME to request ID: its steps waiting for NAME (a step with\n"+
			"wait: {signal: NAME}) complete with the data as their output. A step that\n"+
			"does not wait yet takes the signal when it starts waiting. Without --step\n"+
			"the signal is for every step of the request waiting for NAME, fan-out\n"+
			"children included; --step docs[2]/review names one. The request keeps the\n"+
			"first signal of a name and step: a repeated one is refused. Exits 3 when\n"+
			"ID names no request, 1 when the request would not take the signal\n"+
			"(finished, no step waits for NAME, the step has finished waiting, or the\n"+
			"signal came before).")
	conn.RegisterFlags(fs)
	fs.StringVar(&data, "data", "{}", "the signal's data, a JSON object; @FILE reads it from a file, @- from stdin")
	fs.StringVar(&step, "step", "", "the path of the one step the signal is for (default: every step waiting for NAME)")
	fs.DurationVar(&timeout, "timeout", 30*time.Second, "give up after this long")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		fs.Usage()
		return &exitError{code: 2, msg: "give a request ID and a signal NAME"}
	}
	id, name := pos[0], pos[1]
	raw, source, err := readInput("--data", data, stdin)
	if err != nil {
		return err
	}
	if err := client.ValidateInput(raw); err != nil {
		return &exitError{code: 2, msg: fmt.Sprintf("%s: signal data: %s", source, strings.TrimPrefix(err.Error(), "stepwise: "))}
	}
	ctx, cl, done, err := dial(ctx, conn, timeout)
	if err != nil {
		return err
	}
	defer done()
	st, err := requestStatus(ctx, cl, id, timeout)
	if err != nil {
		return err
	}
	opts, err := conn.Opts()
	if err != nil {
		return err
	}
	cat := definitions.NewCatalog()
	if err := definitions.ReadAll(ctx, opts, conn.Prefix, cat, nil); err != nil {
		return timeoutHint(ctx, err, timeout)
	}
	root := st.Request
	wf, _, err := cat.Resolve(root.Workflow, root.DefinitionVersion())
	if err != nil {
		return &exitError{code: 1, msg: "cannot signal: " + strings.TrimPrefix(err.Error(), "stepwise: ")}
	}
	children := map[string]*schemas.Record{}
	for _, c := range st.Children {
		children[c.Path] = c
	}
	if err := machine.CheckSignal(wf, root, func(p string) *schemas.Record { return children[p] }, name, step); err != nil {
		if errors.Is(err, machine.ErrSignalRefused) {
			return &exitError{code: 1, msg: strings.TrimPrefix(err.Error(), machine.ErrSignalRefused.Error()+": ")}
		}
		return err
	}
	if err := cl.Signal(ctx, id, name, step, raw); err != nil {
		return timeoutHint(ctx, err, timeout)
	}
	fmt.Fprintf(stdout, "signal %s sent to %s\n", name, id)
	return nil
}
