package processors

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

func TestTopics(t *testing.T) {
	e := newEnv(t, threeSteps, 3) // EnsureTopics ran
	ctx := context.Background()
	adm := e.admin()
	p := e.conn.Prefix
	specs := e.set.Topics(p)
	if err := CheckTopics(ctx, adm, p, specs); err != nil {
		t.Fatal(err)
	}
	if err := EnsureTopics(ctx, adm, specs, 3, 1); err != nil {
		t.Fatalf("second EnsureTopics: %v", err)
	}
	sts, err := DescribeTopics(ctx, adm, p, specs)
	if err != nil {
		t.Fatal(err)
	}
	if len(sts) != len(specs) {
		t.Fatalf("%d statuses for %d topics", len(sts), len(specs))
	}
	for _, st := range sts {
		if st.Status() != "ok" || st.Partitions != 3 || st.ReplicationFactor != 1 || st.Cleanup != wantCleanup(st.Spec) {
			t.Errorf("%s: %+v (%s)", st.Spec.Name, st, st.Status())
		}
	}

	// Drift: a task topic missing, state not compacted, completions with
	// a different partition count.
	if _, err := adm.DeleteTopics(ctx, p.Tasks("b")); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "cleanup.policy", Value: kadm.StringPtr("delete")}}, p.State()); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreatePartitions(ctx, 2, p.Completions()); err != nil {
		t.Fatal(err)
	}
	err = CheckTopics(ctx, adm, p, specs)
	var drift *TopicDriftError
	if !errors.As(err, &drift) || !errors.Is(err, ErrTopicDrift) {
		t.Fatalf("err = %v, want a TopicDriftError", err)
	}
	msg := err.Error()
	for _, want := range []string{
		p.Tasks("b") + ": missing",
		p.State() + `: cleanup.policy is "delete", want "compact"`,
		p.Completions() + ": 5 partitions, but " + p.Requests() + " has 3",
		"stepwise topics create -f FILE",
		"Partition counts only grow",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if len(drift.Problems) != 3 {
		t.Errorf("problems: %q", drift.Problems)
	}

	// EnsureTopics repairs what it can: the missing topic and the policy.
	// (A fresh client each time: kadm caches metadata for a few seconds.)
	if err := EnsureTopics(ctx, e.admin(), specs, 3, 1); err != nil {
		t.Fatal(err)
	}
	err = CheckTopics(ctx, e.admin(), p, specs)
	if !errors.As(err, &drift) || len(drift.Problems) != 1 || !strings.Contains(drift.Problems[0], p.Completions()) {
		t.Fatalf("after repair: %v", err)
	}
}

// A processor refuses to start on a cluster without its topics and says
// how to fix it.
func TestProcessorRefusesMissingTopics(t *testing.T) {
	e := newEnv(t, threeSteps, 2)
	if _, err := e.admin().DeleteTopics(context.Background(), e.conn.Prefix.State()); err != nil {
		t.Fatal(err)
	}
	r := e.startProcessor("p1")
	select {
	case err := <-r.done:
		r.done <- err
		if !errors.Is(err, ErrTopicDrift) || !strings.Contains(err.Error(), "stepwise topics create") {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("processor started without its state topic")
	}
}
