// Command stepwise is the one binary of Stepwise: it runs the processors,
// the embedded development broker, and every client command.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/stepwise-run/stepwise/topology"
)

// command is one subcommand. Each lives in its own file and registers
// itself from an init function.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string) error
}

var commands = map[string]command{}

func register(c command) { commands[c.name] = c }

// exitError carries a specific exit code out of a subcommand; its message
// has already been printed when msg is empty.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		return
	}
	c, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "stepwise: unknown command %q\n\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := c.run(ctx, os.Args[2:]); err != nil {
		code := 1
		if ee, ok := err.(*exitError); ok {
			code = ee.code
			if ee.msg == "" {
				os.Exit(code)
			}
		}
		fmt.Fprintf(os.Stderr, "stepwise %s: %v\n", c.name, err)
		os.Exit(code)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "Stepwise: Kafka-native workflow orchestration.\n\nUsage: stepwise COMMAND [flags]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(os.Stderr, "\nRun 'stepwise COMMAND -h' for a command's flags.")
}

// newFlagSet returns the flag set of a subcommand: errors and -h go to
// stderr, and -h prints usage (what the command does) and then the flags.
func newFlagSet(name string, stderr io.Writer, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), usage+"\n\nFlags:")
		fs.PrintDefaults()
	}
	return fs
}

// loadDefinitions loads the workflow files given with -f.
func loadDefinitions(files []string) (*topology.Set, error) {
	if len(files) == 0 {
		return nil, &exitError{code: 2, msg: "no definition file: give one or more with -f"}
	}
	return topology.Load(files...)
}
