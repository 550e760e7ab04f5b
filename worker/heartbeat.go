package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/schemas"
)

// Heartbeats (PROTOCOL.md, Heartbeats): a task whose step has a heartbeat
// timeout states an interval (HeartbeatInterval). While the handler runs,
// the worker sends a heartbeat every interval on its own; a handler that
// wants to report progress, or that may block the goroutine the beats
// come from, calls Task.Heartbeat.

// HeartbeatInterval is the interval the task asks heartbeats at; 0 when
// its step has no heartbeat timeout.
func (t *Task) HeartbeatInterval() time.Duration { return t.beatEvery }

// Heartbeat tells the processors that the task is alive now, with
// details (anything that encodes to a JSON object; nil for none) that the
// request's state keeps, up to 4 KiB, until the next one. Later automatic
// heartbeats carry the same details. It waits for the broker's answer. It
// does nothing for a task whose step has no heartbeat timeout.
func (t *Task) Heartbeat(ctx context.Context, details any) error {
	if t.beat == nil {
		return nil
	}
	var raw json.RawMessage
	if details != nil {
		b, err := json.Marshal(details)
		if err != nil || !isObject(b) {
			return fmt.Errorf("stepwise: heartbeat details must encode to a JSON object: %v", err)
		}
		raw = b
	}
	return t.beat.send(ctx, raw, true)
}

// beater sends the heartbeats of one running task.
type beater struct {
	c  *consumer
	rp *reply
	mu struct {
		sync.Mutex
		details json.RawMessage // the last details given; reused by automatic beats
	}
}

// heartbeatInterval reads the task's stepwise-heartbeat-interval header;
// 0 when absent or unreadable (a task is never refused for it).
func heartbeatInterval(h map[string]string) time.Duration {
	ms, err := strconv.ParseInt(h[schemas.HeaderHeartbeat], 10, 64)
	if err != nil || ms <= 0 {
		return 0
	}
	return time.Duration(ms) * time.Millisecond
}

// startBeats arms task t's heartbeats for the run of its handler: it
// returns the function that stops the automatic ones, to call when the
// handler returns.
func (c *consumer) startBeats(ctx context.Context, rp *reply, t *Task) (stop func()) {
	if t.beatEvery <= 0 {
		return func() {}
	}
	b := &beater{c: c, rp: rp}
	t.beat = b
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(t.beatEvery)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				b.mu.Lock()
				details := b.mu.details
				b.mu.Unlock()
				if err := b.send(ctx, details, false); err != nil && ctx.Err() == nil {
					c.log.Warn("heartbeat not sent", slog.String(logRequest, rp.request), slog.String(logStep, rp.step), slog.String(logError, err.Error()))
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}

// send produces one heartbeat; keep records details for later beats.
func (b *beater) send(ctx context.Context, details json.RawMessage, keep bool) error {
	if keep {
		b.mu.Lock()
		b.mu.details = details
		b.mu.Unlock()
	}
	v := []byte(`{}`)
	if len(details) > 0 {
		v, _ = json.Marshal(struct {
			Details json.RawMessage `json:"details"`
		}{details})
	}
	// The record's context is never cancelled: the beats stop when the
	// handler returns, and a heartbeat cut short then must not fail a
	// record the producer may be sending already, on the partition the
	// result goes to next. Only the wait for the broker's answer ends
	// with ctx.
	done := make(chan error, 1)
	b.c.producer.Produce(context.WithoutCancel(ctx), b.rp.record(schemas.StatusHeartbeat, v), func(_ *kgo.Record, err error) { done <- err })
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
