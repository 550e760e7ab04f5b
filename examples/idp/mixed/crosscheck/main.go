// Command crosscheck inspects, after a run of examples/idp/mixed/run.sh,
// which programs did the work of each queue of the idp workflow, and
// deletes a run's topics and groups from a shared broker.
//
//	crosscheck groups --brokers B --prefix P --expect ocr=idp-ocr-python,classify=idp-classify-ts,*=idp-go
//	crosscheck clean  --brokers B --prefix P
//
// # groups
//
// The workers of queue q, whatever their language, join consumer group
// <prefix>workers.<q> and consume <prefix>tasks.<q> (schemas/PROTOCOL.md).
// For each queue, groups waits until the group has members, has committed
// on every partition holding tasks (the queue of an onFailure handler, idle
// while nothing fails, needs members only), and then checks that every member
// reports the client id --expect names for the queue ("*" for the rest).
// Since a Kafka client id is set by the program, this proves that the OCR
// tasks went to the Python worker and classification to the TypeScript
// one, and that no Go worker took part in either. It prints one line per
// queue: members, tasks records (markers of the processors' transactions
// included) and the offsets committed.
//
// # clean
//
// Deletes the topics and consumer groups whose names start with --prefix,
// which must not be the default "stepwise." (a run on a shared broker uses
// a prefix of its own).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/examples/idp"
	"github.com/stepwise-run/stepwise/topology"
)

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "groups" && os.Args[1] != "clean") {
		fmt.Fprintln(os.Stderr, "usage: crosscheck groups|clean --brokers B --prefix P [--expect q=client,...,*=client] [--timeout 30s]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	brokers := fs.String("brokers", "127.0.0.1:9092", "comma-separated seed brokers")
	prefix := fs.String("prefix", string(topology.DefaultPrefix), "topic prefix of the run")
	expect := fs.String("expect", "", "client id expected in each queue's group: queue=client,...; *=client for the others")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	_ = fs.Parse(os.Args[2:])

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(*brokers, ",")...))
	if err != nil {
		fail(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	p := topology.Prefix(*prefix)
	if os.Args[1] == "clean" {
		err = clean(ctx, adm, p)
	} else {
		err = groups(ctx, adm, p, *expect)
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "crosscheck:", err)
	os.Exit(1)
}

// workerGroup is the consumer group of queue q's workers under the SDKs'
// default group stem, <prefix>workers.
func workerGroup(p topology.Prefix, queue string) string {
	return string(p) + "workers." + queue
}

// parseExpect reads "q=client,...,*=client" into a function giving the
// client id expected for a queue.
func parseExpect(s string) (func(queue string) string, error) {
	m := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		q, c, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || q == "" || c == "" {
			return nil, fmt.Errorf("--expect %q: want queue=client pairs", s)
		}
		m[q] = c
	}
	return func(queue string) string {
		if c, ok := m[queue]; ok {
			return c
		}
		return m["*"]
	}, nil
}

// queueReport is what groups found about one queue.
type queueReport struct {
	queue     string
	clients   []string // client id of each member
	records   int64    // end offsets summed over the tasks topic's partitions
	committed int64    // the group's committed offsets, summed
	missing   []int32  // partitions holding tasks without a commit
}

// ready says the group has settled: it has members and has committed every
// partition holding tasks. The queue of a workflow's onFailure handler
// (idle) has no tasks when nothing failed; members are enough there.
func (r queueReport) ready(idle bool) bool {
	return len(r.clients) > 0 && (r.records > 0 || idle) && len(r.missing) == 0
}

func inspect(ctx context.Context, adm *kadm.Client, p topology.Prefix, queue string) (queueReport, error) {
	r := queueReport{queue: queue}
	topic, group := p.Tasks(queue), workerGroup(p, queue)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return r, err
	}
	if err := ends.Error(); err != nil {
		return r, err
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return r, err
	}
	ends.Each(func(o kadm.ListedOffset) {
		r.records += o.Offset
		c, ok := committed.Lookup(topic, o.Partition)
		if ok && c.Err == nil && c.At >= 0 {
			r.committed += c.At
		}
		if o.Offset > 0 && (!ok || c.Err != nil || c.At <= 0) {
			r.missing = append(r.missing, o.Partition)
		}
	})
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return r, err
	}
	for _, m := range described[group].Members {
		r.clients = append(r.clients, m.ClientID)
	}
	slices.Sort(r.clients)
	return r, nil
}

func groups(ctx context.Context, adm *kadm.Client, p topology.Prefix, expect string) error {
	want, err := parseExpect(expect)
	if err != nil {
		return err
	}
	set, err := idp.Definitions()
	if err != nil {
		return err
	}
	idle := map[string]bool{} // queues serving an onFailure handler
	for _, w := range set.Workflows {
		if st := w.Graph.OnFailure; st != nil {
			idle[st.Queue] = true
		}
	}
	var bad []string
	for _, q := range set.Queues() {
		var r queueReport
		for {
			if r, err = inspect(ctx, adm, p, q); err == nil && r.ready(idle[q]) {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("queue %s: no settled group %s before the timeout (members %v, %d task records, no commit on partitions %v, last error %v)",
					q, workerGroup(p, q), r.clients, r.records, r.missing, err)
			case <-time.After(250 * time.Millisecond):
			}
		}
		others := slices.DeleteFunc(slices.Clone(r.clients), func(c string) bool { return c == want(q) })
		fmt.Printf("queue %-9s members %-30s tasks topic end offsets %5d, committed %5d\n", q, strings.Join(r.clients, ","), r.records, r.committed)
		if want(q) != "" && len(others) > 0 {
			bad = append(bad, fmt.Sprintf("queue %s: members %v, want only %s", q, others, want(q)))
		}
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	return nil
}

func clean(ctx context.Context, adm *kadm.Client, p topology.Prefix) error {
	if p == topology.DefaultPrefix || len(p) < 4 {
		return fmt.Errorf("refusing to delete the topics of prefix %q: clean is for a run's own prefix", p)
	}
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		return err
	}
	var mine []string
	for _, t := range topics.Names() {
		if strings.HasPrefix(t, string(p)) {
			mine = append(mine, t)
		}
	}
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		return err
	}
	var gs []string
	for _, g := range slices.Sorted(maps.Keys(listed)) {
		if strings.HasPrefix(g, string(p)) {
			gs = append(gs, g)
		}
	}
	var errs []error
	if len(gs) > 0 {
		resp, err := adm.DeleteGroups(ctx, gs...)
		errs = append(errs, err)
		for g, r := range resp {
			if r.Err != nil {
				errs = append(errs, fmt.Errorf("group %s: %w", g, r.Err))
			}
		}
	}
	if len(mine) > 0 {
		resp, err := adm.DeleteTopics(ctx, mine...)
		errs = append(errs, err)
		errs = append(errs, resp.Error())
	}
	fmt.Printf("deleted %d topics and %d groups of prefix %s\n", len(mine), len(gs), p)
	return errors.Join(errs...)
}
