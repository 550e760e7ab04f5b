package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/stepwise-run/stepwise/topology"
)

func init() {
	register(command{
		name:    "validate",
		summary: "check workflow definition files and report every problem",
		run:     runValidate,
	})
}

// runValidate checks each file on its own, then, when they are all valid,
// that they can be loaded together (no workflow defined in two files).
// Valid files are reported on stdout, problems on stderr; any problem makes
// the exit code 1.
func runValidate(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: stepwise validate FILE...\n\n"+
			"Checks workflow definition files. Prints \"FILE: OK (N workflows)\" for each\n"+
			"valid file, or every problem as \"file:line:col: field.path: message\".\n"+
			"Exits 1 when there is any problem.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return &exitError{code: 2}
	}
	files := fs.Args()
	if len(files) == 0 {
		fs.Usage()
		return &exitError{code: 2}
	}
	if !validateFiles(os.Stdout, os.Stderr, files) {
		return &exitError{code: 1}
	}
	return nil
}

// validateFiles prints the verdict on each file and reports whether all
// are valid, alone and together.
func validateFiles(stdout, stderr io.Writer, files []string) bool {
	ok := true
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", file, err)
			ok = false
			continue
		}
		set, err := topology.Parse(file, data)
		if err != nil {
			fmt.Fprintln(stderr, err)
			ok = false
			continue
		}
		fmt.Fprintf(stdout, "%s: OK (%d %s)\n", file, len(set.Order), plural(len(set.Order), "workflow"))
		for _, name := range set.Order {
			w := set.Workflows[name]
			for _, t := range w.UnusedTasks() {
				fmt.Fprintf(stderr, "%s: warning: workflow %q: task %q is never used\n", file, name, t)
			}
		}
	}
	if ok && len(files) > 1 {
		if _, err := topology.Load(files...); err != nil {
			fmt.Fprintln(stderr, err)
			ok = false
		}
	}
	return ok
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
