package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/stepwise-run/stepwise/internal/logkey"
)

// Handler runs one task and returns the step's output, a JSON object (nil
// means {}), or an error: retryable unless wrapped with Permanent. The
// context is cancelled at the task's deadline and when the worker's drain
// timeout runs out; a handler should return promptly then.
type Handler func(ctx context.Context, t *Task) (json.RawMessage, error)

// Middleware wraps a Handler with behaviour common to many queues.
type Middleware func(Handler) Handler

// chain applies mws so that the first is outermost: it sees the task first
// and the outcome last.
func chain(h Handler, mws ...Middleware) Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// PanicError is the error a handler's panic becomes: retryable, since the
// panic may come from a passing condition.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// Recover turns a panic of next into a *PanicError. The worker always
// applies it outside every other middleware, so a panic never crashes the
// process; use it explicitly only to recover closer to the handler.
func Recover(next Handler) Handler {
	return func(ctx context.Context, t *Task) (out json.RawMessage, err error) {
		defer func() {
			if v := recover(); v != nil {
				out, err = nil, &PanicError{Value: v, Stack: debug.Stack()}
			}
		}()
		return next(ctx, t)
	}
}

// Timeout bounds each run of the handler to d, or to the task's deadline
// when that comes first. A handler cut short returns its context's error,
// which is retryable.
func Timeout(d time.Duration) Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, t *Task) (json.RawMessage, error) {
			ctx, cancel := context.WithTimeout(ctx, d)
			defer cancel()
			return next(ctx, t)
		}
	}
}

// Log keys, constant so log queries can rely on them; those shared with
// the other parts come from internal/logkey.
const (
	logQueue     = logkey.Queue
	logRequest   = logkey.Request
	logWorkflow  = logkey.Workflow
	logStep      = logkey.Step
	logAttempt   = logkey.Attempt
	logDuration  = logkey.Duration
	logError     = logkey.Error
	logPermanent = "permanent"
	logTopic     = logkey.Topic
	logPartition = logkey.Partition
	logOffset    = logkey.Offset
	logRetryIn   = logkey.RetryIn
)

// Logging logs each task when it ends: at Info when it succeeded, at Warn
// when it failed (with the error and whether it is permanent), with the
// queue, request, step, attempt and duration.
func Logging(logger *slog.Logger) Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, t *Task) (json.RawMessage, error) {
			start := time.Now()
			out, err := next(ctx, t)
			attrs := []slog.Attr{
				slog.String(logQueue, t.Queue),
				slog.String(logRequest, t.Request),
				slog.String(logWorkflow, t.Workflow),
				slog.String(logStep, t.Step),
				slog.Int(logAttempt, t.Attempt),
				slog.Duration(logDuration, time.Since(start)),
			}
			if err != nil {
				attrs = append(attrs, slog.String(logError, err.Error()), slog.Bool(logPermanent, IsPermanent(err)))
				logger.LogAttrs(ctx, slog.LevelWarn, "step failed", attrs...)
			} else {
				logger.LogAttrs(ctx, slog.LevelInfo, "step done", attrs...)
			}
			return out, err
		}
	}
}
