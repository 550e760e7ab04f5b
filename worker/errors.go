package worker

import (
	"errors"

	"github.com/stepwise-run/stepwise/kconn"
)

// Errors returned by New and Run.
var (
	// ErrNoHandlers: Run was called before any Handle.
	ErrNoHandlers = errors.New("stepwise: worker has no handlers; call Handle before Run")
	// ErrBadHandle: a Handle call was invalid (the error says which).
	ErrBadHandle = errors.New("stepwise: invalid Handle call")
	// ErrRunning: Run was called twice.
	ErrRunning = errors.New("stepwise: worker is already running")
	// ErrNoBrokers: neither brokers nor a connection was configured.
	ErrNoBrokers = kconn.ErrNoBrokers
	// ErrProduce: a result could not be produced; the task runs again after
	// a restart.
	ErrProduce = errors.New("stepwise: producing a result failed")
)

// PermanentError marks a failure that retrying cannot fix: the step fails
// at once and so does the request (unless the workflow handles it). Create
// it with Permanent; detect it with errors.As.
type PermanentError struct {
	Err error
}

// Permanent wraps err so the step is not retried. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// Error returns the wrapped error's message unchanged: it is what the
// result reports.
func (e *PermanentError) Error() string { return e.Err.Error() }

func (e *PermanentError) Unwrap() error { return e.Err }

// IsPermanent reports whether err, or an error it wraps, is a
// PermanentError.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}
