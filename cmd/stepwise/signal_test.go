package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stepwise-run/stepwise/client"
	"github.com/stepwise-run/stepwise/internal/devbroker"
	"github.com/stepwise-run/stepwise/internal/testlog"
	"github.com/stepwise-run/stepwise/processors"
	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/topology"
	"github.com/stepwise-run/stepwise/worker"
)

const signalYAML = `workflows:
  - name: approval
    steps:
      - name: first
      - name: approve
        depends: [first]
        wait: {signal: approve}
      - name: after
        depends: [approve]
`

// stepwise signal against the embedded broker, a processor and a worker:
// an early signal is kept until its step waits, and what the request
// would ignore is refused with exit status 1 (3 for an unknown request).
func TestSignalCommand(t *testing.T) {
	log := testlog.New(t)
	b, err := devbroker.Start(devbroker.WithAddr("127.0.0.1:0"), devbroker.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	set, err := topology.Parse("approval.yaml", []byte(signalYAML))
	if err != nil {
		t.Fatal(err)
	}
	conn := b.Conn(topology.DefaultPrefix)
	ctx, cancel := context.WithCancel(context.Background())
	if err := b.CreateTopics(ctx, set, conn.Prefix, 2); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	run := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("%s: %v", name, err)
			}
		}()
	}
	p, err := processors.New(processors.Config{Conn: conn, Set: set, ReplicaID: "p1", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	run("processor", p.Run)
	release := make(chan struct{})
	w, err := worker.New(worker.WithConn(conn), worker.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	w.Handle("first", func(ctx context.Context, _ *worker.Task) (json.RawMessage, error) {
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return json.RawMessage(`{"first":true}`), nil
	})
	w.Handle("after", func(_ context.Context, t *worker.Task) (json.RawMessage, error) { return t.Input, nil })
	run("worker", w.Run)

	cl, err := client.New(client.WithConn(conn))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.Start(ctx, "approval", "ap-1", nil); err != nil {
		t.Fatal(err)
	}
	brokers := strings.Join(conn.Brokers, ",")
	signal := func(args ...string) (string, int) {
		var out, errb bytes.Buffer
		err := signalMain(ctx, append([]string{"--brokers", brokers}, args...), strings.NewReader(`{"from":"stdin"}`), &out, &errb)
		if err != nil {
			return err.Error(), cmdExitCode(err)
		}
		return out.String(), 0
	}
	// The state is written shortly after the start.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if said, code := signal("ap-1", "nope"); code != exitUnknown {
			if code != 1 || !strings.Contains(said, `no step of workflow "approval" waits for signal "nope"`) {
				t.Fatalf("signal nobody waits for: exit %d, %q", code, said)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the request's state never appeared")
		}
	}
	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"nobody", "approve"}, exitUnknown, `unknown request "nobody"`},
		{[]string{"ap-1"}, 2, "give a request ID and a signal NAME"},
		{[]string{"ap-1", "approve", "--data", "[1]"}, 2, "--data: signal data: invalid input; it must be a JSON object: it is an array"},
		{[]string{"ap-1", "approve", "--step", "first"}, 1, `step first of workflow "approval" does not wait for signal "approve"`},
		{[]string{"ap-1", "approve", "--data", "@-"}, 0, "signal approve sent to ap-1\n"}, // early: first still runs
	} {
		if said, code := signal(tc.args...); code != tc.code || !strings.Contains(said, tc.says) {
			t.Errorf("signal %v: exit %d, %q; want exit %d saying %q", tc.args, code, said, tc.code, tc.says)
		}
	}
	// Once the state holds the signal, a repeat is refused.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		said, code := signal("ap-1", "approve", "--data", `{"from":"repeat"}`)
		if code == 1 && strings.Contains(said, "already received") {
			break
		}
		if code == 0 || time.Now().After(deadline) {
			t.Fatalf("repeated signal: exit %d, %q", code, said)
		}
	}
	close(release)
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	c, err := cl.Wait(wctx, "ap-1")
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != schemas.Succeeded || string(c.Output) != `{"from":"stdin"}` {
		t.Fatalf("completion %s %s; want the early signal's data through after", c.Status, c.Output)
	}
	if said, code := signal("ap-1", "approve"); code != 1 || !strings.Contains(said, "is succeeded; only a running request takes signals") {
		t.Errorf("signal of a finished request: exit %d, %q", code, said)
	}
}
