package worker

import (
	"context"
	"errors"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/schemas"
)

// ErrCancelled is the cause of a handler's context cancelled because the
// request was cancelled (or failed elsewhere) while the handler ran:
// context.Cause(ctx) returns it. The handler should stop; whatever it
// returns is dropped, since no result is wanted any more.
var ErrCancelled = errors.New("stepwise: request cancelled; the task's result is no longer wanted")

// maxCancelled bounds the cancels remembered for tasks not started yet.
const maxCancelled = 10000

// cancels holds the cancel functions of the running handlers of one queue
// and the cancels that arrived before their task started, by task key.
type cancels struct {
	mu      sync.Mutex
	running map[string]context.CancelCauseFunc
	early   map[string]bool
	order   []string // keys of early, oldest first
}

func newCancels() *cancels {
	return &cancels{running: map[string]context.CancelCauseFunc{}, early: map[string]bool{}}
}

// taskKey identifies one attempt of one step of one request.
func taskKey(request, step, attempt string) string {
	return request + "\x00" + step + "\x00" + attempt
}

// isControl reports whether a record of a task topic is a control message
// (schemas.HeaderControl) rather than a task, and returns its task key.
func isControl(rec *kgo.Record) (key string, control bool) {
	var kind, request, step, attempt string
	for _, h := range rec.Headers {
		switch h.Key {
		case schemas.HeaderControl:
			kind = string(h.Value)
		case schemas.HeaderRequest:
			request = string(h.Value)
		case schemas.HeaderStep:
			step = string(h.Value)
		case schemas.HeaderAttempt:
			attempt = string(h.Value)
		}
	}
	if kind == "" {
		return "", false
	}
	return taskKey(request, step, attempt), true
}

// cancel cancels the running handler of key, or remembers the cancel for a
// task of key not started yet. It reports whether a handler was running.
func (c *cancels) cancel(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if stop, ok := c.running[key]; ok {
		stop(ErrCancelled)
		return true
	}
	if !c.early[key] {
		c.early[key] = true
		c.order = append(c.order, key)
		for len(c.order) > maxCancelled {
			delete(c.early, c.order[0])
			c.order = c.order[1:]
		}
	}
	return false
}

// begin registers the handler context of key. It returns the context to
// run the handler with and a function to call when the handler returns;
// ok is false when the task was cancelled before it started.
func (c *cancels) begin(ctx context.Context, key string) (_ context.Context, end func(), ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.early[key] {
		delete(c.early, key)
		return nil, nil, false
	}
	ctx, stop := context.WithCancelCause(ctx)
	c.running[key] = stop
	return ctx, func() {
		c.mu.Lock()
		delete(c.running, key)
		c.mu.Unlock()
		stop(nil)
	}, true
}
