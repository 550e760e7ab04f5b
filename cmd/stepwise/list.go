package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"text/tabwriter"
	"time"

	"github.com/stepwise-run/stepwise/kconn"
	"github.com/stepwise-run/stepwise/view"
)

func init() {
	register(command{
		name:    "list",
		summary: "list requests by workflow and status, newest first",
		run: func(ctx context.Context, args []string) error {
			return listMain(ctx, args, os.Stdout, os.Stderr)
		},
	})
}

func listMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		conn             kconn.Config
		workflow, status string
		output, cursor   string
		limit            int
		timeout          time.Duration
	)
	fs := newFlagSet("list", stderr,
		"Usage: stepwise list [--workflow W] [--status S] [--limit N] [-o table|json] [flags]\n\n"+
			"Lists requests newest first, from the same view of the state topic the\n"+
			"HTTP API serves (GET /api/v1/requests): read here from every partition,\n"+
			"so no API server or processor needs to run. Finished requests stay listed\n"+
			"until the processors forget them (their retention). With more rows than\n"+
			"--limit, the next page is asked for with --cursor.")
	conn.RegisterFlags(fs)
	fs.StringVar(&workflow, "workflow", "", "only requests of this workflow")
	fs.StringVar(&status, "status", "", "only requests with this status: running, succeeded, failed or cancelled")
	fs.IntVar(&limit, "limit", 50, "rows at most (1 to 1000)")
	fs.StringVar(&cursor, "cursor", "", "start after this position (the nextCursor a previous page printed)")
	fs.StringVar(&output, "o", "table", "output format: table or json")
	fs.DurationVar(&timeout, "timeout", 30*time.Second, "give up after this long")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		fs.Usage()
		return &exitError{code: 2, msg: fmt.Sprintf("unexpected argument %q", pos[0])}
	}
	if output != "table" && output != "json" {
		return &exitError{code: 2, msg: fmt.Sprintf("-o %q: use table or json", output)}
	}
	// Refuse bad arguments before reading the whole topic.
	if err := view.ValidateList(status, cursor, limit); err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	v := view.New(conn, view.WithLogger(quiet))
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx) }()
	select {
	case <-v.Ready():
	case err := <-done:
		if err == nil {
			err = ctx.Err()
		}
		return timeoutHint(ctx, err, timeout)
	case <-ctx.Done():
		return timeoutHint(ctx, ctx.Err(), timeout)
	}
	page, err := v.List(workflow, status, cursor, limit)
	cancel()
	<-done
	if err != nil {
		return err
	}
	if output == "json" {
		b, _ := json.MarshalIndent(page, "", "  ")
		fmt.Fprintf(stdout, "%s\n", b)
		return nil
	}
	printList(stdout, page, time.Now())
	return nil
}

// printList writes a page of requests as a table.
func printList(w io.Writer, page view.RequestList, now time.Time) {
	if len(page.Requests) == 0 {
		fmt.Fprintln(w, "no request")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tWORKFLOW\tSTATUS\tSTARTED\tDURATION\tERROR")
	for _, r := range page.Requests {
		end := r.Updated
		if r.Status == "running" {
			end = now
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Workflow, r.Status, stamp(r.Created), span(end.Sub(r.Created)), errorCell(r.Error, 80))
	}
	tw.Flush()
	if page.NextCursor != "" {
		fmt.Fprintf(w, "\nmore: stepwise list --cursor %s (with the same filters)\n", page.NextCursor)
	}
}

// errorCell shortens s to one line of at most n runes.
func errorCell(s string, n int) string {
	r := []rune(s)
	for i, c := range r {
		if c == '\n' || c == '\r' {
			r = r[:i]
			break
		}
	}
	if len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return string(r)
}
