package processors

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stepwise-run/stepwise/internal/testlog"
	"github.com/stepwise-run/stepwise/schemas"
	sdk "github.com/stepwise-run/stepwise/worker"
)

const heartbeatsYAML = `workflows:
  - name: beats
    steps:
      - name: slow
        heartbeatTimeout: 1s
        retry: {maxAttempts: 1}
`

// A handler that runs well past its heartbeat timeout succeeds: the Go
// SDK beats while it runs.
func TestRuntimeHeartbeatsKeepASlowTaskAlive(t *testing.T) {
	e := newEnv(t, heartbeatsYAML, 2)
	comps := e.watchCompletions()
	e.startProcessor("p1")
	w, err := sdk.New(sdk.WithConn(e.conn), sdk.WithLogger(testlog.New(t)))
	if err != nil {
		t.Fatal(err)
	}
	w.Handle("slow", func(ctx context.Context, tk *sdk.Task) (json.RawMessage, error) {
		if tk.HeartbeatInterval() != 333*time.Millisecond { // a third of 1s, in whole milliseconds
			return nil, sdk.Permanent(errors.New("the task asks for heartbeats every " + tk.HeartbeatInterval().String()))
		}
		time.Sleep(3 * time.Second)
		return json.RawMessage(`{"done":true}`), nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	e.start("beats", "hb-1")
	comps.wait(t, []string{"hb-1"}, 30*time.Second)
	comps.exactlyOnce(t, []string{"hb-1"}, schemas.Succeeded)
}

// A worker that takes the task and goes silent fails the attempt at the
// heartbeat timeout.
func TestRuntimeSilentWorkerFailsAtItsHeartbeatTimeout(t *testing.T) {
	e := newEnv(t, heartbeatsYAML, 2)
	comps := e.watchCompletions()
	e.startWorker(answerAllBut("slow"))
	e.startProcessor("p1")
	e.start("beats", "hb-2")
	comps.wait(t, []string{"hb-2"}, 30*time.Second)
	comps.exactlyOnce(t, []string{"hb-2"}, schemas.Failed)
	if c, _ := comps.get("hb-2"); c.Error == nil || c.Error.Message != "no heartbeat for 1s (attempt 1 of 1)" {
		t.Fatalf("completion %+v", c)
	}
}
