package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/stepwise-run/stepwise/topology"
)

func init() {
	register(command{
		name:    "graph",
		summary: "draw the step graph of workflows (Graphviz dot or Mermaid)",
		run:     runGraph,
	})
}

func runGraph(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("graph", flag.ContinueOnError)
	workflow := fs.String("workflow", "", "draw only this workflow (default: every workflow of the file)")
	format := fs.String("format", "dot", "output syntax: dot or mermaid")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: stepwise graph FILE [--workflow W] [--format dot|mermaid]\n\n"+
			"Prints the step graph of the workflows defined in FILE. Fan-out steps are\n"+
			"drawn as clusters holding their task's steps.\n\n"+
			"  stepwise graph wf.yaml | dot -Tsvg > wf.svg\n\nFlags:")
		fs.PrintDefaults()
	}
	// Flags may come before or after FILE.
	var files []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return &exitError{code: 2}
		}
		if fs.NArg() == 0 {
			break
		}
		files = append(files, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(files) != 1 {
		fs.Usage()
		return &exitError{code: 2}
	}
	write := topology.WriteDot
	switch strings.ToLower(*format) {
	case "dot":
	case "mermaid":
		write = topology.WriteMermaid
	default:
		fmt.Fprintf(os.Stderr, "stepwise graph: unknown format %q: use dot or mermaid\n", *format)
		return &exitError{code: 2}
	}

	set, err := topology.Load(files[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return &exitError{code: 1}
	}
	var workflows []*topology.Workflow
	if *workflow == "" {
		for _, name := range set.Order {
			workflows = append(workflows, set.Workflows[name])
		}
	} else {
		w := set.Lookup(*workflow)
		if w == nil {
			names := slices.Clone(set.Order)
			slices.Sort(names)
			fmt.Fprintf(os.Stderr, "%s: no workflow %q (it has: %s)\n", files[0], *workflow, strings.Join(names, ", "))
			return &exitError{code: 1}
		}
		workflows = append(workflows, w)
	}
	return write(os.Stdout, workflows...)
}
