package machine

import (
	"maps"
	"slices"

	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/statekey"
)

// TimersOf returns the timers a stored record implies. The runtime calls it
// for every record it restores to rebuild its in-memory due-time index; the
// machine emits the same timers in SetTimers when it writes the record.
func TimersOf(r *schemas.Record) []Timer {
	var out []Timer
	if r.Path == "" && r.Status != schemas.Running && !r.ExpireAt.IsZero() {
		out = append(out, Timer{Request: r.Request, Kind: TimerExpire, At: r.ExpireAt})
	}
	if r.Status != schemas.Running {
		return out
	}
	if r.Path == "" && !r.Deadline.IsZero() {
		out = append(out, Timer{Request: r.Request, Attempt: r.Run(), Kind: TimerDeadline, At: r.Deadline})
	}
	if r.Kind == schemas.KindFanout {
		return spawnTimers(r)
	}
	for _, name := range slices.Sorted(maps.Keys(r.Steps)) {
		s := r.Steps[name]
		switch {
		case s.Status == schemas.StepWaiting && !s.RetryAt.IsZero():
			out = append(out, Timer{Request: r.Request, Step: statekey.StepPath(r.Path, name), Attempt: s.Attempt, Kind: TimerRetry, At: s.RetryAt})
		case s.Status == schemas.StepRunning && !s.Deadline.IsZero():
			out = append(out, Timer{Request: r.Request, Step: statekey.StepPath(r.Path, name), Attempt: s.Attempt, Kind: TimerTimeout, At: s.Deadline})
		}
		if s.Status == schemas.StepRunning && !s.HeartbeatDue.IsZero() {
			out = append(out, Timer{Request: r.Request, Step: statekey.StepPath(r.Path, name), Attempt: s.Attempt, Kind: TimerHeartbeat, At: s.HeartbeatDue})
		}
	}
	return out
}
