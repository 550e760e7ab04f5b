package processors

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/client"
	"github.com/stepwise-run/stepwise/schemas"
)

const retentionYAML = `
workflows:
  - name: short
    retention: 1s
    steps:
      - name: a
  - name: chain
    steps:
      - name: a
      - name: b
        depends: [a]
`

// TestRetentionTombstonesAndCompaction: a request of a workflow with a 1 s
// retention is tombstoned at expiry (get says "expired"), and once the
// compacted state topic is cleaned its key is gone; a request of a
// workflow on the default retention is still there.
func TestRetentionTombstonesAndCompaction(t *testing.T) {
	e := newEnv(t, retentionYAML, 1)
	ctx := context.Background()
	if _, err := e.admin().AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "delete.retention.ms", Value: kadm.StringPtr("500")}}, e.conn.Prefix.State()); err != nil {
		t.Fatal(err)
	}
	comps := e.watchCompletions()
	e.startWorker(echo)
	e.startProcessor("p1")
	short := ids("short", 5)
	e.start("short", short...)
	comps.wait(t, short, 20*time.Second)
	comps.exactlyOnce(t, short, schemas.Succeeded)

	cl, err := client.New(client.WithConn(e.conn))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := cl.Get(ctx, short[0])
		if errors.Is(err, client.ErrExpired) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("get of a request past its 1 s retention: %v, want expired", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Later writes, so that the tombstones are not in the partition's
	// last batch (which compaction keeps).
	kept := ids("kept", 5)
	e.start("chain", kept...)
	comps.wait(t, kept, 20*time.Second)

	var keys map[string]bool
	for deadline := time.Now().Add(30 * time.Second); ; {
		e.cluster.Compact()
		keys = e.stateKeys(t)
		gone := true
		for _, id := range short {
			gone = gone && !keys[id]
		}
		if gone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("keys of expired requests still in the state topic after compaction: %v", keys)
		}
		time.Sleep(300 * time.Millisecond)
	}
	for _, id := range kept {
		if !keys[id] {
			t.Errorf("request %s on the default retention is gone: keys %v", id, keys)
		}
	}
	t.Logf("state topic after compaction: %d keys, none of the %d expired requests", len(keys), len(short))
}

// stateKeys reads the state topic from its start and returns every key it
// holds a record (value or tombstone) of.
func (e *env) stateKeys(t *testing.T) map[string]bool {
	t.Helper()
	cl := e.client(kgo.ConsumeTopics(e.conn.Prefix.State()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(100*time.Millisecond))
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), e.conn.Prefix.State())
	if err != nil {
		t.Fatal(err)
	}
	end := int64(0)
	ends.Each(func(o kadm.ListedOffset) { end = max(end, o.Offset) })
	keys := map[string]bool{}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		last := int64(-1)
		fs.EachRecord(func(r *kgo.Record) {
			keys[string(r.Key)] = true
			last = max(last, r.Offset)
		})
		if last+2 >= end { // the last offset may be a transaction marker
			break
		}
	}
	return keys
}
