package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stepwise-run/stepwise/client"
	"github.com/stepwise-run/stepwise/kconn"
	"github.com/stepwise-run/stepwise/schemas"
)

func init() {
	register(command{
		name:    "get",
		summary: "show the state of a request and its steps",
		run: func(ctx context.Context, args []string) error {
			return getMain(ctx, args, os.Stdout, os.Stderr)
		},
	})
}

func getMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		conn     kconn.Config
		output   string
		attempts bool
		timeout  time.Duration
	)
	fs := newFlagSet("get", stderr,
		"Usage: stepwise get ID [-o table|json] [--attempts] [flags]\n\n"+
			"Shows the committed state of request ID, read from the state topic: its\n"+
			"status and a table of its started steps (fan-out children included, a\n"+
			"fan-out step showing done/children), or with -o json the state records.\n"+
			"--attempts adds a row for every earlier attempt of a step that did not\n"+
			"succeed (the first 7 and the latest of each step, with a count beyond).\n"+
			"Reads every partition of the state topic: fine for a terminal; at volume\n"+
			"use the HTTP API (stepwise api).")
	conn.RegisterFlags(fs)
	fs.StringVar(&output, "o", "table", "output format: table or json")
	fs.BoolVar(&attempts, "attempts", false, "list the earlier attempts of every step too")
	fs.DurationVar(&timeout, "timeout", 30*time.Second, "give up after this long")
	id, err := oneRequestID(fs, args)
	if err != nil {
		return err
	}
	if output != "table" && output != "json" {
		return &exitError{code: 2, msg: fmt.Sprintf("-o %q: use table or json", output)}
	}

	ctx, cl, done, err := dial(ctx, conn, timeout)
	if err != nil {
		return err
	}
	defer done()
	st, err := cl.Get(ctx, id)
	if errors.Is(err, client.ErrExpired) {
		fmt.Fprintf(stderr, "stepwise: request %s expired: it finished and was forgotten after its retention\n", id)
		return &exitError{code: 1}
	}
	if errors.Is(err, client.ErrNotFound) {
		fmt.Fprintf(stderr, "stepwise: request %s not found\n", id)
		return &exitError{code: 1}
	}
	if err != nil {
		return timeoutHint(ctx, err, timeout)
	}
	if output == "json" {
		if st.Children == nil {
			st.Children = []*schemas.Record{} // [] rather than null for scripts
		}
		b, _ := json.MarshalIndent(struct {
			Request  *schemas.Record   `json:"request"`
			Children []*schemas.Record `json:"children"`
		}{st.Request, st.Children}, "", "  ")
		fmt.Fprintf(stdout, "%s\n", b)
		return nil
	}
	printStatus(stdout, st, time.Now(), attempts)
	return nil
}

// printStatus writes the request's summary and its steps as a table, with
// a row per earlier attempt when attempts is set.
func printStatus(w io.Writer, st *client.Status, now time.Time, attempts bool) {
	r := st.Request
	fmt.Fprintf(w, "request   %s\nworkflow  %s\nversion   %d\nrun       %d\nstatus    %s\nstarted   %s\n", r.Request, r.Workflow, r.DefinitionVersion(), r.Run(), r.Status, stamp(r.Created))
	if r.Status == schemas.Running {
		fmt.Fprintf(w, "running   %s\n", span(now.Sub(r.Created)))
	} else {
		fmt.Fprintf(w, "finished  %s (%s)\n", stamp(r.Updated), span(r.Updated.Sub(r.Created)))
	}
	if r.Error != nil {
		where := ""
		if r.Error.Step != "" {
			where = fmt.Sprintf(" (step %s, attempt %d)", r.Error.Step, r.Error.Attempt)
		}
		fmt.Fprintf(w, "error     %s%s\n", r.Error.Message, where)
	}
	steps := st.Steps()
	if len(steps) == 0 {
		fmt.Fprintln(w, "\nno step started yet")
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	// With attempts, each row also says who ran the attempt and how large
	// its output is.
	row := func(step, status, attempt, started, duration, worker, output, errMsg string) {
		if attempts {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", step, status, attempt, started, duration, worker, output, errMsg)
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", step, status, attempt, started, duration, errMsg)
		}
	}
	row("STEP", "STATUS", "ATTEMPT", "STARTED", "DURATION", "WORKER", "OUTPUT", "ERROR")
	for _, s := range steps {
		ss := s.State
		if attempts {
			for _, a := range ss.Earlier {
				row(s.Path, a.Outcome, fmt.Sprint(a.Attempt), stamp(a.Started), span(a.Ended.Sub(a.Started)), orDash(a.Worker), "-", oneLine(a.Error))
			}
			if ss.EarlierDropped > 0 {
				row(s.Path, fmt.Sprintf("(%d more earlier attempts)", ss.EarlierDropped), "", "", "", "", "", "")
			}
		}
		status := string(ss.Status)
		if ss.Children > 0 { // a fan-out step
			status += fmt.Sprintf(" %d/%d", ss.Done, ss.Children)
		}
		if ss.Status == schemas.StepWaiting && !ss.RetryAt.IsZero() {
			status += " until " + ss.RetryAt.UTC().Format("15:04:05")
		}
		attempt := "-"
		if ss.Attempt > 0 {
			attempt = fmt.Sprint(ss.Attempt)
		}
		duration := "-"
		switch {
		case ss.Started.IsZero():
		case !ss.Ended.IsZero():
			duration = span(ss.Ended.Sub(ss.Started))
		case ss.Status == schemas.StepRunning:
			duration = span(now.Sub(ss.Started)) + "+"
		}
		output := "-"
		if len(ss.Output) > 0 {
			output = fmt.Sprintf("%d B", len(ss.Output))
		}
		row(s.Path, status, attempt, stamp(ss.Started), duration, orDash(ss.Worker), output, oneLine(ss.Error))
	}
	tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05.000")
}

// span rounds a duration for people: milliseconds below a minute.
func span(d time.Duration) string {
	if d < time.Minute {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// oneLine keeps a table row on one line.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}
