package worker

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/schemas/schematest"
)

// A task that asks for heartbeats gets them while its handler runs, every
// interval and when the handler calls Heartbeat, then its result; one that
// does not ask gets none.
func TestHeartbeatsWhileTheHandlerRuns(t *testing.T) {
	e := newEnv(t)
	called := make(chan error, 1)
	e.worker(func(ctx context.Context, tk *Task) (json.RawMessage, error) {
		if tk.HeartbeatInterval() == 0 {
			called <- tk.Heartbeat(ctx, map[string]int{"ignored": 1})
			return tk.Input, nil
		}
		time.Sleep(350 * time.Millisecond)
		called <- tk.Heartbeat(ctx, map[string]int{"page": 2})
		if err := tk.Heartbeat(ctx, []int{1}); err == nil {
			t.Error("details that are not an object were sent")
		}
		time.Sleep(350 * time.Millisecond)
		return tk.Input, nil
	}, nil)
	headers := map[string]string{
		schemas.HeaderRequest: "hb-1", schemas.HeaderWorkflow: "wf", schemas.HeaderStep: "ocr",
		schemas.HeaderAttempt: "1", schemas.HeaderInstance: "hb-1",
		schemas.HeaderReplyTopic: testResults, schemas.HeaderReplyPartition: "3",
		schemas.HeaderHeartbeat: "100",
	}
	e.task(0, "hb-1", headers, []byte(`{"n":1}`))
	var beats []string
	for {
		r := e.next(10 * time.Second)
		if r == nil {
			t.Fatalf("no result; heartbeats so far %v", beats)
		}
		h := headerMap(r)
		schematest.ValidHeaders(t, "result", h)
		if r.Partition != 3 || h[schemas.HeaderRequest] != "hb-1" || h[schemas.HeaderAttempt] != "1" {
			t.Fatalf("record on partition %d with headers %v", r.Partition, h)
		}
		if h[schemas.HeaderStatus] == schemas.StatusHeartbeat {
			beats = append(beats, string(r.Value))
			continue
		}
		if h[schemas.HeaderStatus] != schemas.StatusOK {
			t.Fatalf("result %v %s", h, r.Value)
		}
		break
	}
	if err := <-called; err != nil {
		t.Fatal(err)
	}
	// About 7 automatic beats in 700ms at 100ms; the load of the machine
	// may stretch the ticks, so only their presence is checked.
	explicit := strings.Join(beats, " ")
	if len(beats) < 3 || !strings.Contains(explicit, `{"details":{"page":2}}`) || beats[0] != `{}` {
		t.Fatalf("heartbeats %v; want automatic ones ({} before any details) and the explicit one", beats)
	}
	if last := beats[len(beats)-1]; last != `{"details":{"page":2}}` {
		t.Errorf("last heartbeat %s: automatic beats after Heartbeat repeat its details", last)
	}

	// Without the header: no heartbeat, Heartbeat does nothing.
	e.simpleTask(1, "hb-2", `{}`)
	r := e.next(10 * time.Second)
	if r == nil || headerMap(r)[schemas.HeaderStatus] != schemas.StatusOK {
		t.Fatalf("want the result of hb-2 first and alone, got %v", r)
	}
	if err := <-called; err != nil {
		t.Fatal(err)
	}
}
