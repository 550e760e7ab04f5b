package topology

import (
	"slices"
	"time"
)

// A dispatched step's heartbeatTimeout: its task message states a
// heartbeat interval (HeartbeatInterval), the worker SDKs send heartbeats
// at that interval while the handler runs, and the processors fail the
// attempt (retryable) when none came for heartbeatTimeout, long before
// the step's timeout.

func init() {
	Keys["step"] = append(slices.Clip(Keys["step"]), "heartbeatTimeout")
}

// HeartbeatInterval is the interval the task message of a step with
// heartbeat timeout d asks workers to send heartbeats at: a third of d,
// so that one lost heartbeat does not fail the attempt.
func HeartbeatInterval(d time.Duration) time.Duration { return d / 3 }

// checkHeartbeat checks a step's heartbeatTimeout (set). The rules:
//   - it is at least 1s (the interval is a third of it);
//   - only a dispatched step has one: not a fan-out, wait or sleep step.
func checkHeartbeat(s *stepSpec, l *errorList) {
	p := s.path + ".heartbeatTimeout"
	switch {
	case s.heartbeat.val < time.Second:
		l.add(s.heartbeat.at, p, "must be at least 1s, got %s (workers beat every third of it)", s.heartbeat.val)
	case s.task.set || s.wait != nil || s.sleep.set:
		l.add(s.heartbeat.at, p, "only a dispatched step has a heartbeat timeout: not a fan-out, wait or sleep step")
	}
}
