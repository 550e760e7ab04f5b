package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/stepwise-run/stepwise/client"
	"github.com/stepwise-run/stepwise/kconn"
	"github.com/stepwise-run/stepwise/schemas"
)

func init() {
	register(command{
		name:    "start",
		summary: "start a request of a workflow, optionally waiting for its completion",
		run: func(ctx context.Context, args []string) error {
			return startMain(ctx, args, os.Stdin, os.Stdout, os.Stderr)
		},
	})
}

// Exit statuses of 'stepwise start --wait'.
const (
	exitFailed  = 1 // the request failed or was cancelled
	exitTimeout = 2 // the request was still running at --timeout
	exitExists  = 3 // --id already names a request; the start is ignored
)

func startMain(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var (
		conn    kconn.Config
		id      string
		input   string
		wait    bool
		version int
		timeout time.Duration
		tp      string
	)
	fs := newFlagSet("start", stderr,
		"Usage: stepwise start WORKFLOW [--id ID] [--input JSON|@FILE|@-] [--version N] [--wait [--timeout 60s]] [flags]\n\n"+
			"Starts a request of WORKFLOW, on its newest definition version unless\n"+
			"--version pins another, and prints its id. With --wait, waits for the\n"+
			"request to finish and prints its completion event as JSON instead; the exit\n"+
			"status is then 0 when it succeeded, 1 when it failed or was cancelled, and 2\n"+
			"when it was still running at --timeout. The request goes on either way.\n"+
			"An --id that already names a request (of any workflow) exits 3 and starts\n"+
			"nothing: the first start of an id wins.")
	conn.RegisterFlags(fs)
	fs.StringVar(&id, "id", "", "request id (default: a random UUID); an id already in use exits 3")
	fs.StringVar(&input, "input", "{}", "the workflow's input, a JSON object; @FILE reads it from a file, @- from stdin")
	fs.BoolVar(&wait, "wait", false, "wait for the completion and print it")
	fs.IntVar(&version, "version", 0, "run on this definition version (see 'stepwise apply'); 0: the newest")
	fs.DurationVar(&timeout, "timeout", 60*time.Second, "give up after this long (with --wait: waiting for the completion)")
	fs.StringVar(&tp, "traceparent", os.Getenv("TRACEPARENT"), "W3C traceparent of the span the request's trace continues (default: $TRACEPARENT)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return &exitError{code: 2, msg: "give exactly one WORKFLOW"}
	}
	workflow := pos[0]

	raw, source, err := readInput("--input", input, stdin)
	if err != nil {
		return err
	}
	if err := client.ValidateInput(raw); err != nil {
		return fmt.Errorf("%s: %s", source, strings.TrimPrefix(err.Error(), "stepwise: "))
	}
	if id != "" {
		if err := client.ValidateID(id); err != nil {
			return err
		}
	}

	ctx, cl, done, err := dial(ctx, conn, timeout)
	if err != nil {
		return err
	}
	defer done()
	if id != "" {
		if err := cl.Existing(ctx, id); err != nil {
			return existsExit(timeoutHint(ctx, err, timeout))
		}
	}
	opts := []client.StartOption{client.AtVersion(version)}
	if tp != "" {
		opts = append(opts, client.WithTraceparent(tp))
	}
	id, err = cl.Start(ctx, workflow, id, raw, opts...)
	if err != nil {
		return timeoutHint(ctx, err, timeout)
	}
	if !wait {
		fmt.Fprintln(stdout, id)
		return nil
	}
	comp, err := cl.Wait(ctx, id)
	if errors.Is(err, context.DeadlineExceeded) {
		fmt.Fprintf(stderr, "stepwise start: request %s still running after %s\n", id, timeout)
		return &exitError{code: exitTimeout}
	}
	if err != nil {
		// A request of another workflow under this id (its state was not
		// yet written when Existing looked): never print its completion.
		return existsExit(err)
	}
	b, _ := json.MarshalIndent(comp, "", "  ")
	fmt.Fprintf(stdout, "%s\n", b)
	if comp.Status != schemas.Succeeded {
		return &exitError{code: exitFailed}
	}
	return nil
}

// existsExit turns an error wrapping client.ErrExists into exit status
// exitExists with a message saying what to do; other errors pass through.
func existsExit(err error) error {
	if !errors.Is(err, client.ErrExists) {
		return err
	}
	return &exitError{code: exitExists, msg: strings.TrimPrefix(err.Error(), "stepwise: ") +
		"; a start of an existing id is ignored: choose another --id, or look at this one with 'stepwise get'"}
}

// dial connects a client for a command that gives up after timeout: the
// command's context, the client, and the function that closes both.
func dial(ctx context.Context, conn kconn.Config, timeout time.Duration) (context.Context, *client.Client, func(), error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	cl, err := client.New(client.WithConn(conn))
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	return ctx, cl, func() { cl.Close(); cancel() }, nil
}

// readInput resolves the JSON value of flag (named for messages, e.g.
// "--input"): inline JSON, @FILE, or @- for stdin. It returns the bytes
// and where they came from.
func readInput(flag, input string, stdin io.Reader) ([]byte, string, error) {
	name, ok := strings.CutPrefix(input, "@")
	switch {
	case !ok:
		return []byte(input), flag, nil
	case name == "-":
		b, err := io.ReadAll(stdin)
		if err != nil {
			return nil, "", fmt.Errorf("read input from stdin: %w", err)
		}
		return b, "input from stdin", nil
	default:
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, "", fmt.Errorf("read input: %w", err)
		}
		return b, name, nil
	}
}

// timeoutHint explains a deadline hit before anything happened: most
// often no broker answers at the configured address.
func timeoutHint(ctx context.Context, err error, timeout time.Duration) error {
	if ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("no answer from the brokers within %s (is --brokers right, and is Kafka or 'stepwise dev' running?): %w", timeout, err)
	}
	return err
}

// oneRequestID parses the flags of a command that takes exactly one
// request ID and returns the ID.
func oneRequestID(fs *flag.FlagSet, args []string) (string, error) {
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return "", err
	}
	if len(pos) != 1 {
		fs.Usage()
		return "", &exitError{code: 2, msg: "give exactly one request ID"}
	}
	return pos[0], nil
}

// parseInterspersed parses flags placed before, between or after the
// positional arguments (the flag package stops at the first positional
// one), and returns the positional arguments. A "--" ends the flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, &exitError{code: 0}
			}
			return nil, &exitError{code: 2}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}
