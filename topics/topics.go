package topics

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/stepwise-run/stepwise/topology"
)

// Cleanup policies of the topic plan.
const (
	CleanupCompact = "compact"
	CleanupDelete  = "delete"
)

// CompactedConfigs are the topic configs of the compacted topics (state,
// definitions). A low dirty ratio and hourly segments let the cleaner keep
// the state topic close to one record per live key, which is what bounds
// the time a processor takes to restore a partition.
func CompactedConfigs() map[string]*string {
	return map[string]*string{
		"cleanup.policy":            kadm.StringPtr(CleanupCompact),
		"min.cleanable.dirty.ratio": kadm.StringPtr("0.1"),
		"segment.ms":                kadm.StringPtr("3600000"),
	}
}

// ErrDrift is wrapped by the error Check returns when the
// cluster's topics differ from the plan.
var ErrDrift = errors.New("stepwise: kafka topics do not match the topic plan")

// DriftError lists every difference between the plan and the cluster.
type DriftError struct {
	Problems []string // one line each: "<topic>: <what is wrong>"
	Fix      string   // what to run or do about it
	// Passing is true when every problem is one that a `topics create`
	// or a partition increase still under way leaves for a moment: a
	// missing topic, co-partitioned topics with unequal counts. A wrong
	// cleanup policy is never passing.
	Passing bool
}

func (e *DriftError) Error() string {
	var b strings.Builder
	b.WriteString(ErrDrift.Error())
	b.WriteString(":")
	for _, p := range e.Problems {
		b.WriteString("\n  - ")
		b.WriteString(p)
	}
	if e.Fix != "" {
		b.WriteString("\n")
		b.WriteString(e.Fix)
	}
	return b.String()
}

func (e *DriftError) Unwrap() error { return ErrDrift }

// Topic is what the cluster has for one topic of the plan.
type Topic struct {
	Spec              topology.TopicSpec
	Exists            bool
	Partitions        int32
	ReplicationFactor int
	Cleanup           string   // the topic's cleanup.policy
	Drift             []string // why the topic differs from the plan; empty when it matches
}

// Status is "ok", "missing" or "drift: <reasons>".
func (s Topic) Status() string {
	switch {
	case !s.Exists:
		return "missing"
	case len(s.Drift) > 0:
		return "drift: " + strings.Join(s.Drift, "; ")
	}
	return "ok"
}

func wantCleanup(spec topology.TopicSpec) string {
	if spec.Compacted {
		return CleanupCompact
	}
	return CleanupDelete
}

// coPartitioned returns the topics whose partition p all belong to the
// requests living on home partition p; they must have equal partition counts.
func coPartitioned(p topology.Prefix) []string {
	return []string{p.Requests(), p.Results(), p.State(), p.Completions()}
}

// Describe compares the cluster's topics with specs. The partition
// counts of the co-partitioned topics (requests, results, state, completions)
// are compared with the count of requests.
func Describe(ctx context.Context, adm *kadm.Client, p topology.Prefix, specs []topology.TopicSpec) ([]Topic, error) {
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	details, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("stepwise: list topics: %w", err)
	}
	var existing []string
	for _, n := range names {
		if d, ok := details[n]; ok && d.Err == nil {
			existing = append(existing, n)
		}
	}
	configs, err := adm.DescribeTopicConfigs(ctx, existing...)
	if err != nil {
		return nil, fmt.Errorf("stepwise: describe topic configs: %w", err)
	}
	out := make([]Topic, len(specs))
	for i, spec := range specs {
		st := Topic{Spec: spec}
		d, ok := details[spec.Name]
		if ok && d.Err == nil {
			st.Exists = true
			st.Partitions = int32(len(d.Partitions))
			st.ReplicationFactor = d.Partitions.NumReplicas()
			st.Cleanup = cleanupOf(configs, spec.Name)
			if want := wantCleanup(spec); st.Cleanup != want {
				st.Drift = append(st.Drift, fmt.Sprintf("cleanup.policy is %q, want %q", st.Cleanup, want))
			}
		} else if ok && !errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
			return nil, fmt.Errorf("stepwise: describe topic %s: %w", spec.Name, d.Err)
		}
		out[i] = st
	}
	byName := map[string]*Topic{}
	for i := range out {
		byName[out[i].Spec.Name] = &out[i]
	}
	if ref := byName[p.Requests()]; ref != nil && ref.Exists {
		for _, n := range coPartitioned(p)[1:] {
			if st := byName[n]; st != nil && st.Exists && st.Partitions != ref.Partitions {
				st.Drift = append(st.Drift, fmt.Sprintf("%d partitions, but %s has %d (they must be equal)", st.Partitions, ref.Spec.Name, ref.Partitions))
			}
		}
	}
	return out, nil
}

// Check returns nil when every topic of specs exists as planned, else
// a *DriftError naming each difference and how to fix it. Processors
// call it before joining their group: running on a wrong plan (a state
// topic that is not compacted, a results topic with fewer partitions than
// requests) would lose requests rather than fail loudly.
func Check(ctx context.Context, adm *kadm.Client, p topology.Prefix, specs []topology.TopicSpec) error {
	sts, err := Describe(ctx, adm, p, specs)
	if err != nil {
		return err
	}
	var problems []string
	var missing, policy, partitions bool
	for _, st := range sts {
		if !st.Exists {
			missing = true
			problems = append(problems, st.Spec.Name+": missing")
			continue
		}
		for _, d := range st.Drift {
			problems = append(problems, st.Spec.Name+": "+d)
			if strings.HasPrefix(d, "cleanup.policy") {
				policy = true
			} else {
				partitions = true
			}
		}
	}
	if len(problems) == 0 {
		return nil
	}
	var fix []string
	if missing || policy {
		fix = append(fix, "Create the missing topics and fix cleanup policies with: stepwise topics create -f FILE --brokers HOST:PORT [--prefix "+string(p)+"] [--partitions N]")
	}
	if partitions {
		fix = append(fix, "Partition counts only grow: add partitions to the smaller of "+strings.Join(coPartitioned(p), ", ")+
			" until they are equal (kafka-topics.sh --alter --topic T --partitions N).")
	}
	return &DriftError{Problems: problems, Fix: strings.Join(fix, "\n"), Passing: !policy}
}

// Ensure creates the topics of specs that do not exist, with
// partitions partitions (-1: broker default) and replication factor rf (-1:
// broker default); compacted ones get CompactedConfigs. Existing topics
// whose cleanup policy differs from the plan have it set. Partition counts
// of existing topics are left alone; Check reports a mismatch.
// Running it again changes nothing.
func Ensure(ctx context.Context, adm *kadm.Client, specs []topology.TopicSpec, partitions int32, rf int16) error {
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	details, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return fmt.Errorf("stepwise: list topics: %w", err)
	}
	var errs []error
	var existing []string
	for _, spec := range specs {
		d, ok := details[spec.Name]
		if ok && d.Err == nil {
			existing = append(existing, spec.Name)
			continue
		}
		var cfg map[string]*string
		if spec.Compacted {
			cfg = CompactedConfigs()
		}
		resp, err := adm.CreateTopic(ctx, partitions, rf, cfg, spec.Name)
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			if resp.ErrMessage != "" {
				err = fmt.Errorf("%w (%s)", err, resp.ErrMessage)
			}
			errs = append(errs, fmt.Errorf("create %s: %w", spec.Name, err))
		}
	}
	// Topics that existed already: fix their cleanup policy.
	configs, err := adm.DescribeTopicConfigs(ctx, existing...)
	if err != nil {
		return fmt.Errorf("stepwise: describe topic configs: %w", err)
	}
	for _, spec := range specs {
		if !slices.Contains(existing, spec.Name) {
			continue
		}
		want := wantCleanup(spec)
		if cleanupOf(configs, spec.Name) == want {
			continue
		}
		alter := []kadm.AlterConfig{{Name: "cleanup.policy", Value: kadm.StringPtr(want)}}
		if spec.Compacted {
			for _, k := range slices.Sorted(maps.Keys(CompactedConfigs())) {
				if k != "cleanup.policy" {
					alter = append(alter, kadm.AlterConfig{Name: k, Value: CompactedConfigs()[k]})
				}
			}
		}
		resps, err := adm.AlterTopicConfigs(ctx, alter, spec.Name)
		if err == nil {
			for _, r := range resps {
				if r.Err != nil {
					err = r.Err
				}
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("set cleanup.policy=%s on %s: %w", want, spec.Name, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("stepwise: ensure topics: %w", errors.Join(errs...))
	}
	return nil
}

// cleanupOf returns the cleanup.policy of topic in configs; Kafka's default,
// delete, when it is not listed.
func cleanupOf(configs kadm.ResourceConfigs, topic string) string {
	if rc, err := configs.On(topic, nil); err == nil {
		for _, c := range rc.Configs {
			if c.Key == "cleanup.policy" && c.Value != nil {
				return *c.Value
			}
		}
	}
	return CleanupDelete
}
