//go:build integration

package integration

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// TestTransactionalRoundTrip writes one committed, one aborted and one more
// committed transaction, then checks that a read_committed consumer sees
// exactly the committed records in order, and that a read_uncommitted one
// also sees the aborted ones (so the abort really wrote records to skip).
func TestTransactionalRoundTrip(t *testing.T) {
	e := newEnv(t)
	const partitions = 2
	topic := e.CreateTopic("txn", partitions, nil)

	producer := e.Client(
		kgo.TransactionalID(e.Name("producer")),
		kgo.TransactionTimeout(10*time.Second),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	)
	// transact produces values to partition i%partitions inside one
	// transaction and commits or aborts it.
	transact := func(commit bool, values ...string) {
		t.Helper()
		if err := producer.BeginTransaction(); err != nil {
			t.Fatalf("begin: %v", err)
		}
		for i, v := range values {
			r := &kgo.Record{Topic: topic, Partition: int32(i % partitions), Key: []byte("k"), Value: []byte(v)}
			if err := producer.ProduceSync(e.Context(), r).FirstErr(); err != nil {
				t.Fatalf("produce %s: %v", v, err)
			}
		}
		if err := producer.EndTransaction(e.Context(), kgo.TransactionEndTry(commit)); err != nil {
			t.Fatalf("end transaction (commit=%v): %v", commit, err)
		}
	}
	transact(true, "c0", "c1", "c2", "c3", "c4", "c5")
	transact(false, "a0", "a1", "a2", "a3")
	transact(true, "end", "end") // one end marker per partition

	read := func(level kgo.IsolationLevel) map[int32][]string {
		t.Helper()
		cl := e.Client(
			kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.FetchIsolationLevel(level),
		)
		recs := e.pollUntil(cl, func(got []*kgo.Record) bool {
			ends := 0
			for _, r := range got {
				if string(r.Value) == "end" {
					ends++
				}
			}
			return ends == partitions
		})
		byPartition := map[int32][]string{}
		for _, r := range recs {
			byPartition[r.Partition] = append(byPartition[r.Partition], string(r.Value))
		}
		return byPartition
	}

	committed := read(kgo.ReadCommitted())
	wantCommitted := map[int32][]string{
		0: {"c0", "c2", "c4", "end"},
		1: {"c1", "c3", "c5", "end"},
	}
	for p, want := range wantCommitted {
		if !slices.Equal(committed[p], want) {
			t.Errorf("read_committed partition %d: got %v, want %v", p, committed[p], want)
		}
	}

	all := read(kgo.ReadUncommitted())
	wantAll := map[int32][]string{
		0: {"c0", "c2", "c4", "a0", "a2", "end"},
		1: {"c1", "c3", "c5", "a1", "a3", "end"},
	}
	for p, want := range wantAll {
		if !slices.Equal(all[p], want) {
			t.Errorf("read_uncommitted partition %d: got %v, want %v", p, all[p], want)
		}
	}
}

// TestSCRAM logs in on the SASL_PLAINTEXT listener with both SCRAM
// mechanisms, produces and consumes a record over it, and checks that a
// wrong password is refused.
func TestSCRAM(t *testing.T) {
	mechanisms := []struct {
		name string
		mech func(scram.Auth) sasl.Mechanism
	}{
		{"SCRAM-SHA-256", scram.Auth.AsSha256Mechanism},
		{"SCRAM-SHA-512", scram.Auth.AsSha512Mechanism},
	}
	for _, m := range mechanisms {
		t.Run(m.name, func(t *testing.T) {
			e := newEnv(t)
			topic := e.CreateTopic("scram", 1, nil)
			cl := e.SASLClient(m.mech(scram.Auth{User: scramUser, Pass: scramPassword}),
				kgo.ConsumeTopics(topic),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			)
			want := fmt.Sprintf("over %s", m.name)
			if err := cl.ProduceSync(e.Context(), &kgo.Record{Topic: topic, Value: []byte(want)}).FirstErr(); err != nil {
				t.Fatalf("produce as %s: %v", scramUser, err)
			}
			got := e.pollUntil(cl, func(got []*kgo.Record) bool { return len(got) > 0 })
			if string(got[0].Value) != want {
				t.Errorf("consumed %q, want %q", got[0].Value, want)
			}

			bad := e.SASLClient(m.mech(scram.Auth{User: scramUser, Pass: "not-" + scramPassword}),
				kgo.RequestRetries(0))
			err := bad.Ping(e.Context())
			if !errors.Is(err, kerr.SaslAuthenticationFailed) {
				t.Errorf("login with a wrong password: got error %v, want %v", err, kerr.SaslAuthenticationFailed)
			}
		})
	}
}

// TestConsumerGroupProtocol joins a group with the KIP-848 consumer
// protocol (server-side assignment, on by default in Kafka 4.x) and checks
// that the broker reports it as a consumer-protocol group owning every
// partition.
func TestConsumerGroupProtocol(t *testing.T) {
	e := newEnv(t)
	const partitions = 3
	topic := e.CreateTopic("kip848", partitions, nil)
	group := e.Name("group")

	producer := e.Client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for p := range int32(partitions) {
		r := &kgo.Record{Topic: topic, Partition: p, Value: fmt.Appendf(nil, "p%d", p)}
		if err := producer.ProduceSync(e.Context(), r).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}

	consumer := e.Client(
		kgo.ConsumeTopics(topic),
		kgo.ConsumerGroup(group),
		kgo.Balancers(kgo.RangeBalancer()),
		kgo.ServerSideBalancer(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	got := e.pollUntil(consumer, func(got []*kgo.Record) bool { return len(got) == partitions })
	values := make([]string, 0, len(got))
	for _, r := range got {
		values = append(values, string(r.Value))
	}
	slices.Sort(values)
	if want := []string{"p0", "p1", "p2"}; !slices.Equal(values, want) {
		t.Errorf("consumed %v, want %v", values, want)
	}

	// ConsumerGroupDescribe only knows groups of the new protocol: a classic
	// group here would come back as an error.
	described, err := e.Admin.DescribeConsumerGroups(e.Context(), group)
	if err != nil {
		t.Fatalf("describe consumer group: %v", err)
	}
	g := described[group]
	if g.Err != nil {
		t.Fatalf("describe consumer group %s: %v", group, g.Err)
	}
	if len(g.Members) != 1 {
		t.Fatalf("group has %d members, want 1", len(g.Members))
	}
	if n := len(g.Members[0].Assignment[topic]); n != partitions {
		t.Errorf("member is assigned %d partitions of %s, want %d (assignment %v)", n, topic, partitions, g.Members[0].Assignment)
	}
}
