package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/kconn"
	"github.com/stepwise-run/stepwise/topics"
)

func init() {
	register(command{
		name:    "topics",
		summary: "create or describe the Kafka topics the workflows need",
		run:     runTopics,
	})
}

// fileFlags collects repeated -f flags.
type fileFlags []string

func (f *fileFlags) String() string     { return strings.Join(*f, ",") }
func (f *fileFlags) Set(s string) error { *f = append(*f, s); return nil }

// runTopics: "create" makes the topic plan of the definition files exist
// (idempotent), "describe" compares the cluster with it. Both print the
// table of topics; either exits 1 when a topic still differs from the plan.
func runTopics(ctx context.Context, args []string) error {
	usage := "Usage: stepwise topics create|describe|manifest -f FILE... [flags]\n\n" +
		"create    creates the missing topics of the workflows' plan and fixes cleanup\n" +
		"          policies (partition counts of existing topics are left alone)\n" +
		"describe  prints each planned topic: partitions, replication, cleanup, status\n" +
		"manifest  prints the plan as resources for an operator (--format strimzi:\n" +
		"          KafkaTopic resources), without connecting to Kafka\n" +
		"create and describe exit 1 when a topic differs from the plan."
	if len(args) == 0 || (args[0] != "create" && args[0] != "describe" && args[0] != "manifest") {
		fmt.Fprintln(os.Stderr, usage)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return nil
		}
		return &exitError{code: 2}
	}
	sub := args[0]
	fs := flag.NewFlagSet("topics "+sub, flag.ContinueOnError)
	var conn kconn.Config
	conn.RegisterFlags(fs)
	var files fileFlags
	fs.Var(&files, "f", "workflow definition file (repeatable)")
	partitions := fs.Int("partitions", 12, "partitions of each created topic (create)")
	rf := fs.Int("replication-factor", -1, "replication factor of each created topic; -1: the broker's default (create; manifest: default 3)")
	format := fs.String("format", "strimzi", "manifest format: strimzi (manifest)")
	cluster := fs.String("cluster", "my-cluster", "the Strimzi Kafka cluster the topics belong to, label strimzi.io/cluster (manifest)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), usage+"\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return &exitError{code: 2}
	}
	set, err := loadDefinitions(files)
	if err != nil {
		return err
	}
	specs := set.Topics(conn.Prefix)
	if sub == "manifest" {
		if *format != "strimzi" {
			return &exitError{code: 2, msg: fmt.Sprintf("--format %q: the only format is strimzi", *format)}
		}
		replicas := *rf
		if replicas == -1 {
			replicas = 3
		}
		if *partitions < 1 || replicas < 1 {
			return &exitError{code: 2, msg: "manifest: --partitions and --replication-factor must be positive"}
		}
		return topics.WriteStrimzi(os.Stdout, specs, *cluster, *partitions, replicas)
	}
	opts, err := conn.Opts()
	if err != nil {
		return err
	}
	if sub == "create" {
		if *partitions < 1 && *partitions != -1 {
			return &exitError{code: 2, msg: "--partitions must be positive (or -1 for the broker's default)"}
		}
		err := withAdmin(opts, func(adm *kadm.Client) error {
			return topics.Ensure(ctx, adm, specs, int32(*partitions), int16(*rf))
		})
		if err != nil {
			return err
		}
	}
	// A fresh client each time: kadm caches metadata, which would not show
	// topics created a moment ago. After a create, a broker may take a
	// moment to list every new topic: look again for a few seconds before
	// calling anything missing.
	var sts []topics.Topic
	for settle := time.Now().Add(10 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		err = withAdmin(opts, func(adm *kadm.Client) error {
			var err error
			sts, err = topics.Describe(ctx, adm, conn.Prefix, specs)
			return err
		})
		if err != nil {
			return err
		}
		if sub != "create" || allOK(sts) || time.Now().After(settle) || ctx.Err() != nil {
			break
		}
	}
	if !printTopics(os.Stdout, sts) {
		return &exitError{code: 1}
	}
	return nil
}

func withAdmin(opts []kgo.Opt, fn func(*kadm.Client) error) error {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	return fn(kadm.NewClient(cl))
}

func allOK(sts []topics.Topic) bool {
	for _, st := range sts {
		if st.Status() != "ok" {
			return false
		}
	}
	return true
}

// printTopics prints the table and reports whether every topic is ok.
func printTopics(w io.Writer, sts []topics.Topic) bool {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITIONS\tRF\tCLEANUP\tSTATUS")
	ok := true
	for _, st := range sts {
		parts, rf, cleanup := "-", "-", "-"
		if st.Exists {
			parts, rf, cleanup = fmt.Sprint(st.Partitions), fmt.Sprint(st.ReplicationFactor), st.Cleanup
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", st.Spec.Name, parts, rf, cleanup, st.Status())
		ok = ok && st.Status() == "ok"
	}
	tw.Flush()
	return ok
}
