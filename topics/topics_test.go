package topics

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/stepwise-run/stepwise/internal/kfaketest"
	"github.com/stepwise-run/stepwise/topology"
)

// chain is a workflow on three queues, so the plan has three task topics.
const chain = `
workflows:
  - name: chain
    steps:
      - name: a
      - name: b
        depends: [a]
      - name: c
        depends: [b]
`

func TestTopics(t *testing.T) {
	c := kfaketest.Cluster(t)
	set, err := topology.Parse("test.yaml", []byte(chain))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p := topology.DefaultPrefix
	specs := set.Topics(p)
	if err := Ensure(ctx, kfaketest.Admin(t, c), specs, 3, 1); err != nil {
		t.Fatal(err)
	}
	adm := kfaketest.Admin(t, c) // after creating: kadm caches metadata
	if err := Check(ctx, adm, p, specs); err != nil {
		t.Fatal(err)
	}
	if err := Ensure(ctx, adm, specs, 3, 1); err != nil {
		t.Fatalf("second Ensure: %v", err)
	}
	sts, err := Describe(ctx, adm, p, specs)
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
	err = Check(ctx, adm, p, specs)
	var drift *DriftError
	if !errors.As(err, &drift) || !errors.Is(err, ErrDrift) {
		t.Fatalf("err = %v, want a DriftError", err)
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
	if len(drift.Problems) != 3 || drift.Passing {
		t.Errorf("problems: %q, passing %v (a wrong policy never passes)", drift.Problems, drift.Passing)
	}

	// Ensure repairs what it can: the missing topic and the policy.
	// (A fresh client each time: kadm caches metadata for a few seconds.)
	if err := Ensure(ctx, kfaketest.Admin(t, c), specs, 3, 1); err != nil {
		t.Fatal(err)
	}
	err = Check(ctx, kfaketest.Admin(t, c), p, specs)
	if !errors.As(err, &drift) || len(drift.Problems) != 1 || !strings.Contains(drift.Problems[0], p.Completions()) || !drift.Passing {
		t.Fatalf("after repair: %v", err)
	}
}
