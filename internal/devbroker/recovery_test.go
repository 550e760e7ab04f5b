package devbroker

import (
	"context"
	"encoding/binary"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A data directory as a kill -9 leaves it: one transaction committed on one
// partition and without its marker on the other (the process died between
// the two marker writes), and one transaction still open. After a restart,
// the torn transaction must be committed on both partitions, the open one
// aborted, and a transaction the same producer commits after the restart
// visible to read_committed readers. Without recoverDataDir the torn
// transaction's records on the second partition are invisible, and so is
// the producer's next transaction on the first (readers skip its batches
// until an abort marker that kfake never writes).
func TestRecoverTornTransactions(t *testing.T) {
	live := t.TempDir()
	b, err := Start(WithAddr("127.0.0.1:0"), WithDataDir(live))
	if err != nil {
		t.Fatal(err)
	}
	const topic = "torn"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	txn := recoveryProducer(t, b)
	if _, err := kadm.NewClient(txn).CreateTopic(ctx, 2, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	commit := func(values ...string) {
		if err := txn.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i, v := range values {
			txn.Produce(ctx, &kgo.Record{Topic: topic, Partition: int32(i), Value: []byte(v)}, nil)
		}
		if err := txn.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if values[len(values)-1] == "open" {
			return
		}
		if err := txn.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
	}
	commit("one", "one")
	commit("two", "two")
	commit("open") // on partition 0 only, never ended

	// kill -9: the files as the running broker left them, then the marker
	// of "two" on partition 1 taken away, as if the process had died just
	// before writing it.
	crashed := t.TempDir()
	copyDir(t, live, crashed)
	txn.Close()
	b.Close()
	dropLastBatch(t, filepath.Join(crashed, "partitions", topic+"-1"))

	repairs, err := recoverDataDir(crashed)
	if err != nil {
		t.Fatal(err)
	}
	if len(repairs) != 2 {
		t.Fatalf("repairs %v, want a commit on %s-1 and an abort on %s-0", repairs, topic, topic)
	}
	for _, r := range repairs {
		if r.Commit != (r.Partition == 1) {
			t.Errorf("repair %v: want a commit on partition 1 and an abort on 0", r)
		}
	}
	if again, err := recoverDataDir(crashed); err != nil || len(again) != 0 {
		t.Fatalf("a second recovery repaired %v (%v), want nothing", again, err)
	}

	b, err = Start(WithAddr("127.0.0.1:0"), WithDataDir(crashed))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	txn = recoveryProducer(t, b)
	defer txn.Close()
	commit("after")
	got := readCommitted(t, b, topic, 5)
	want := map[int32][]string{0: {"one", "two", "after"}, 1: {"one", "two"}}
	for p, w := range want {
		if !slices.Equal(got[p], w) {
			t.Errorf("partition %d: read_committed reads %q, want %q", p, got[p], w)
		}
	}
}

func recoveryProducer(t *testing.T, b *Broker) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.TransactionalID("recovery"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// readCommitted reads topic read_committed until n records arrived or
// nothing more comes for 3 s.
func readCommitted(t *testing.T, b *Broker, topic string, n int) map[int32][]string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	out := map[int32][]string{}
	for got := 0; got < n; {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		if fs.NumRecords() == 0 {
			break
		}
		fs.EachRecord(func(r *kgo.Record) {
			out[r.Partition] = append(out[r.Partition], string(r.Value))
			got++
		})
	}
	return out
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// dropLastBatch removes the last record batch of the partition's only
// segment, and its index entry.
func dropLastBatch(t *testing.T, pdir string) {
	t.Helper()
	seg, idx := filepath.Join(pdir, "0.dat"), filepath.Join(pdir, "0.idx")
	raw, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	last, n := 0, 0
	for pos := 0; pos+batchHeaderBytes <= len(raw); n++ {
		last = pos
		pos += batchHeaderBytes + int(binary.BigEndian.Uint32(raw[pos+8:pos+12]))
	}
	if n < 2 {
		t.Fatalf("%s holds %d batches", seg, n)
	}
	if err := os.Truncate(seg, int64(last)); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(idx, int64((n-1)*indexEntrySize)); err != nil {
		t.Fatal(err)
	}
}
