package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/definitions"
	"github.com/stepwise-run/stepwise/kconn"
	"github.com/stepwise-run/stepwise/topics"
	"github.com/stepwise-run/stepwise/topology"
)

func init() {
	register(command{
		name:    "apply",
		summary: "publish new versions of workflow definitions (or delete workflows) for the processors to run",
		run: func(ctx context.Context, args []string) error {
			return applyMain(ctx, args, os.Stdout, os.Stderr)
		},
	})
}

func applyMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		conn    kconn.Config
		files   fileFlags
		deletes fileFlags
		timeout time.Duration
	)
	fs := newFlagSet("apply", stderr,
		"Usage: stepwise apply -f FILE... [--delete NAME]... [flags]\n\n"+
			"Validates the files and publishes each workflow they define to the\n"+
			"definitions topic as a new version, one above its newest, unless its\n"+
			"content (comments and key order aside) equals the newest version: that\n"+
			"is a no-op and says so. Running processors and APIs follow the topic:\n"+
			"new requests start on the new version, running ones finish on theirs.\n"+
			"--delete NAME refuses new starts of NAME; its running requests finish.\n"+
			"The task topics of the workflows must exist ('stepwise topics create').")
	conn.RegisterFlags(fs)
	fs.Var(&files, "f", "workflow definition file (repeatable)")
	fs.Var(&deletes, "delete", "workflow to delete (repeatable)")
	fs.DurationVar(&timeout, "timeout", 30*time.Second, "give up after this long")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 || len(files) == 0 && len(deletes) == 0 {
		fs.Usage()
		return &exitError{code: 2, msg: "give definition files with -f, or workflows to delete with --delete"}
	}
	set := &topology.Set{Workflows: map[string]*topology.Workflow{}}
	if len(files) > 0 {
		if set, err = topology.Load(files...); err != nil {
			return err
		}
	}
	opts, err := conn.Opts()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := checkPlan(ctx, opts, conn.Prefix, set); err != nil {
		return err
	}
	out, err := definitions.Publish(ctx, opts, conn.Prefix, set, deletes, time.Now())
	if err != nil {
		return timeoutHint(ctx, err, timeout)
	}
	for _, o := range out {
		switch {
		case o.Deleted:
			fmt.Fprintf(stdout, "%s: deleted (version %d); new starts are refused, running requests finish\n", o.Workflow, o.Version)
		case o.Unchanged:
			fmt.Fprintf(stdout, "%s: unchanged, version %d (%s)\n", o.Workflow, o.Version, short(o.Hash))
		default:
			fmt.Fprintf(stdout, "%s: applied as version %d (%s)\n", o.Workflow, o.Version, short(o.Hash))
		}
	}
	return nil
}

// checkPlan refuses to publish workflows whose topics are missing: their
// requests could not be dispatched.
func checkPlan(ctx context.Context, opts []kgo.Opt, prefix topology.Prefix, set *topology.Set) error {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	return topics.Check(ctx, kadm.NewClient(cl), prefix, set.Topics(prefix))
}

// short abbreviates a content hash for people.
func short(hash string) string {
	if len(hash) > len("sha256:")+12 {
		return hash[:len("sha256:")+12]
	}
	return hash
}
