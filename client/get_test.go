package client

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/internal/testlog"
	"github.com/stepwise-run/stepwise/kconn"
	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/view"
)

// TestGetAgreesWithView: a processor died with its transaction finishing
// r-1 open below the high watermark, and the transaction then commits. Get
// and the API's view read the state topic by the same rule, so both wait
// for it and both answer "succeeded". (Get used to read to the last stable
// offset and answered "running" while the API said "succeeded".)
func TestGetAgreesWithView(t *testing.T) {
	c := cluster(t)
	cl := newClient(t, c)
	p := newProcessor(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	running := &schemas.Record{Request: "r-1", Workflow: "idp", Partition: 1, Status: schemas.Running, Created: t0, Updated: t0}
	p.txn(true, stateRec(running))
	done := *running
	done.Status, done.Updated = schemas.StatusSucceeded, t0.Add(time.Second)
	if err := p.out.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := p.out.ProduceSync(ctx, stateRec(&done)).FirstErr(); err != nil {
		t.Fatal(err)
	}

	type got struct {
		st  *Status
		err error
	}
	gets := make(chan got, 1)
	go func() {
		st, err := cl.Get(ctx, "r-1")
		gets <- got{st, err}
	}()
	v := view.New(kconn.Config{Brokers: c.ListenAddrs(), Prefix: prefix}, view.WithLogger(testlog.New(t)))
	vctx, vcancel := context.WithCancel(ctx)
	defer vcancel()
	go func() { _ = v.Run(vctx) }()

	// While the transaction is open neither may answer.
	select {
	case g := <-gets:
		t.Fatalf("Get answered while a transaction below the high watermark was open: %+v, %v", g.st.Request, g.err)
	case <-v.Ready():
		t.Fatal("the view was ready while a transaction below the high watermark was open")
	case <-time.After(time.Second):
	}
	if err := p.out.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}

	g := <-gets
	if g.err != nil {
		t.Fatal(g.err)
	}
	select {
	case <-v.Ready():
	case <-ctx.Done():
		t.Fatal("view not ready after the transaction committed")
	}
	r := v.Get("r-1")
	if r == nil {
		t.Fatal("the view has no r-1")
	}
	if api, cli := r.Summary().Status, string(g.st.Request.Status); api != cli || cli != string(schemas.StatusSucceeded) {
		t.Fatalf("get says %q, the API's view %q; want both succeeded", cli, api)
	}
}
