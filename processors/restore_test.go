package processors

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/processors/machine"
	"github.com/stepwise-run/stepwise/schemas"
)

// stateWriter writes state records in transactions, as a processor does.
type stateWriter struct {
	t  testing.TB
	cl *kgo.Client
	e  *env
}

func (e *env) stateWriter(id string) *stateWriter {
	return &stateWriter{t: e.t, e: e, cl: e.client(
		kgo.TransactionalID(id),
		kgo.TransactionTimeout(10*time.Second),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	)}
}

func rec(id string, steps map[string]*schemas.StepState) *schemas.Record {
	return &schemas.Record{Request: id, Workflow: "chain", ID: id, Status: schemas.Running, Steps: steps,
		Created: time.Unix(1, 0).UTC(), Updated: time.Unix(1, 0).UTC()}
}

// txn writes key => record (nil: tombstone) to partition 0 in one
// transaction and commits or aborts it; with open it leaves it open.
func (w *stateWriter) txn(kv map[string]*schemas.Record, commit bool) {
	w.t.Helper()
	w.begin(kv)
	if err := w.cl.EndTransaction(context.Background(), kgo.TransactionEndTry(commit)); err != nil {
		w.t.Fatal(err)
	}
}

func (w *stateWriter) begin(kv map[string]*schemas.Record) {
	w.t.Helper()
	if err := w.cl.BeginTransaction(); err != nil {
		w.t.Fatal(err)
	}
	for k, r := range kv {
		rr := &kgo.Record{Topic: w.e.conn.Prefix.State(), Partition: 0, Key: []byte(k)}
		if r != nil {
			rr.Value = schemas.EncodeRecord(r)
		}
		if err := w.cl.ProduceSync(context.Background(), rr).FirstErr(); err != nil {
			w.t.Fatal(err)
		}
	}
}

func TestRestore(t *testing.T) {
	e := newEnv(t, threeSteps, 2)
	w := e.stateWriter("writer")
	deadline := time.Unix(100, 0).UTC()
	w.txn(map[string]*schemas.Record{
		"r1": rec("r1", nil),
		"r2": rec("r2", map[string]*schemas.StepState{"a": {Status: schemas.StepRunning, Attempt: 2, Deadline: deadline}}),
		"r3": rec("r3", nil),
	}, true)
	w.txn(map[string]*schemas.Record{"r1": rec("changed-in-aborted-txn", nil), "r4": rec("r4", nil)}, false)
	w.txn(map[string]*schemas.Record{"r3": nil}, true)
	// The partition ends with an aborted transaction: the last records
	// and the marker are never handed to a read_committed consumer.
	w.txn(map[string]*schemas.Record{"r5": rec("r5", nil)}, false)

	res, err := restoreState(context.Background(), e.connOpts(), e.conn.Prefix.State(), []int32{0, 1}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	p := res.parts[0]
	if len(p.records) != 2 || p.records["r1"] == nil || p.records["r1"].Request != "r1" || p.records["r2"] == nil {
		t.Fatalf("restored %v", p.records)
	}
	if res.parts[1] == nil || len(res.parts[1].records) != 0 {
		t.Fatalf("empty partition restored as %+v", res.parts[1])
	}
	due := p.timers.due(deadline, 10)
	if len(due) != 1 || due[0].Request != "r2" || due[0].Step != "a" || due[0].Attempt != 2 || due[0].Kind != machine.TimerTimeout {
		t.Fatalf("timers %+v", due)
	}
	if res.duration > 2*time.Second {
		t.Errorf("restore of a small partition took %s", res.duration)
	}
}

// A transaction still open when the restore starts (a dead replica's) may
// yet commit: the restore must wait for it to be decided, not stop at the
// last stable offset (KAFKA-NOTES pitfall 4).
func TestRestoreWaitsForOpenTransaction(t *testing.T) {
	for _, commit := range []bool{true, false} {
		e := newEnv(t, threeSteps, 1)
		w := e.stateWriter("writer")
		w.txn(map[string]*schemas.Record{"r1": rec("r1", nil)}, true)
		w.begin(map[string]*schemas.Record{"r2": rec("r2", nil)})

		type result struct {
			res *restoreResult
			err error
		}
		ch := make(chan result, 1)
		go func() {
			res, err := restoreState(context.Background(), e.connOpts(), e.conn.Prefix.State(), []int32{0}, testLogger(t))
			ch <- result{res, err}
		}()
		select {
		case r := <-ch:
			t.Fatalf("restore finished while a transaction was open: %+v %v", r.res, r.err)
		case <-time.After(500 * time.Millisecond):
		}
		if err := w.cl.EndTransaction(context.Background(), kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
		var r result
		select {
		case r = <-ch:
		case <-time.After(5 * time.Second):
			t.Fatal("restore did not finish after the transaction ended")
		}
		if r.err != nil {
			t.Fatal(r.err)
		}
		got := r.res.parts[0].records
		if got["r1"] == nil || (got["r2"] != nil) != commit || len(got) != map[bool]int{true: 2, false: 1}[commit] {
			t.Fatalf("commit=%v: restored %v", commit, got)
		}
	}
}

func (e *env) connOpts() []kgo.Opt {
	opts, err := e.conn.Opts()
	if err != nil {
		e.t.Fatal(err)
	}
	return opts
}
