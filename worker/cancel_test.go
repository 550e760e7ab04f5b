package worker

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/schemas"
)

// cancelHeaders are the headers of the cancel control message of the task
// simpleTask makes for id, as the processors write it (same key, so same
// partition, after the task).
func (e *env) cancelHeaders(id string) map[string]string {
	return map[string]string{
		schemas.HeaderControl: schemas.ControlCancel,
		schemas.HeaderRequest: id, schemas.HeaderWorkflow: "wf", schemas.HeaderStep: "ocr", schemas.HeaderAttempt: "1",
	}
}

func (e *env) taskHeaders(id string) map[string]string {
	return map[string]string{
		schemas.HeaderRequest: id, schemas.HeaderWorkflow: "wf", schemas.HeaderStep: "ocr",
		schemas.HeaderAttempt: "1", schemas.HeaderInstance: id,
		schemas.HeaderReplyTopic: testResults, schemas.HeaderReplyPartition: "0",
	}
}

func (e *env) record(partition int32, key string, headers map[string]string, value []byte) *kgo.Record {
	r := &kgo.Record{Topic: testTasks, Partition: partition, Key: []byte(key), Value: value}
	for k, v := range headers {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
	}
	return r
}

func (e *env) cancelTask(partition int32, id string) int64 {
	return e.task(partition, id, e.cancelHeaders(id), []byte(`{"reason":"request cancelled: user asked"}`))
}

// TestCancelReachesARunningHandler: a cancel control message cancels the
// context of the handler running that task, with ErrCancelled as cause; no
// result is sent for it, both records are committed, and the next task of
// the partition runs as usual.
func TestCancelReachesARunningHandler(t *testing.T) {
	e := newEnv(t)
	running := make(chan struct{})
	causes := make(chan error, 1)
	e.worker(func(ctx context.Context, task *Task) (json.RawMessage, error) {
		if task.Request != "r-cancel" {
			return json.RawMessage(`{"ok":true}`), nil
		}
		close(running)
		select {
		case <-ctx.Done():
			causes <- context.Cause(ctx)
			return nil, ctx.Err()
		case <-time.After(20 * time.Second):
			causes <- nil
			return json.RawMessage(`{"late":true}`), nil
		}
	}, nil)
	e.simpleTask(0, "r-cancel", `{}`)
	wait(t, running)
	e.cancelTask(0, "r-cancel")
	select {
	case cause := <-causes:
		if !errors.Is(cause, ErrCancelled) {
			t.Fatalf("handler context ended with cause %v, want ErrCancelled", cause)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the cancel never reached the running handler")
	}
	next := e.simpleTask(0, "r-next", `{}`)
	r := e.next(15 * time.Second)
	if r == nil || string(r.Key) != "r-next" {
		t.Fatalf("first result after the cancel: %v; want r-next's (none for the cancelled task)", r)
	}
	e.waitCommitted(0, next+1)
}

// TestCancelBeforeTheTaskStarts: a task polled together with its cancel
// while every handler slot is busy never runs.
func TestCancelBeforeTheTaskStarts(t *testing.T) {
	e := newEnv(t)
	release := make(chan struct{})
	ran := make(chan string, 4)
	e.worker(func(ctx context.Context, task *Task) (json.RawMessage, error) {
		ran <- task.Request
		if task.Request != "r-doomed" {
			<-release
		}
		return json.RawMessage(`{}`), nil
	}, nil, Concurrency(2))
	e.simpleTask(0, "r-busy-1", `{}`)
	e.simpleTask(0, "r-busy-2", `{}`)
	for range 2 {
		if got := <-ran; got == "r-doomed" {
			t.Fatalf("ran %s first", got)
		}
	}
	// The task and its cancel in one produce: polled together.
	task := e.record(0, "r-doomed", e.taskHeaders("r-doomed"), []byte(`{}`))
	cancel := e.record(0, "r-doomed", e.cancelHeaders("r-doomed"), []byte(`{}`))
	res := e.feed.ProduceSync(context.Background(), task, cancel)
	if err := res.FirstErr(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // let the worker poll both
	close(release)
	e.waitCommitted(0, res[1].Record.Offset+1)
	select {
	case got := <-ran:
		t.Fatalf("%s ran after its cancel", got)
	default:
	}
}
