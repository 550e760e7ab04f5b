package machine

import (
	"fmt"
	"time"

	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/statekey"
	"github.com/stepwise-run/stepwise/topology"
)

// ReasonStaleHeartbeat: a heartbeat for an attempt that is not running
// (finished, a redelivery) or of a step without a heartbeat timeout.
const ReasonStaleHeartbeat Reason = "stale_heartbeat"

// MaxHeartbeatDetails bounds the details a heartbeat leaves in state;
// larger ones are dropped (the heartbeat still counts).
const MaxHeartbeatDetails = 4 << 10

// Heartbeats, the rules:
//
//   - A dispatched step with a heartbeat timeout runs each attempt with a
//     heartbeat due (StepState.HeartbeatDue) that long after dispatch; its
//     task asks for a heartbeat every topology.HeartbeatInterval.
//   - A heartbeat of the running attempt moves the due time to that long
//     after it arrived, and keeps its details (a JSON object, at most
//     MaxHeartbeatDetails bytes). Any other heartbeat changes nothing.
//   - When the due time passes without a heartbeat or a result, the
//     attempt fails, retryable: "no heartbeat for 30s". The retry policy
//     applies, and the step's timeout still bounds the attempt.

// armHeartbeat sets the heartbeat due time of a new attempt ss of step
// at path of inst, and returns the interval its task asks for (0: none).
func (t *transition) armHeartbeat(inst *schemas.Record, step *topology.Step, ss *schemas.StepState, path string) time.Duration {
	if step.HeartbeatTimeout <= 0 {
		return 0
	}
	ss.HeartbeatDue = t.now.Add(step.HeartbeatTimeout)
	t.eff.SetTimers = append(t.eff.SetTimers, Timer{Request: inst.Request, Step: path, Attempt: ss.Attempt, Kind: TimerHeartbeat, At: ss.HeartbeatDue})
	return topology.HeartbeatInterval(step.HeartbeatTimeout)
}

// heartbeat applies a worker's heartbeat to the attempt it names.
func (t *transition) heartbeat(ev Event) {
	inst, step, ss, reason, why := t.locate(ev.Request, ev.Step)
	if reason != "" {
		t.ignore(reason, why)
		return
	}
	if step.HeartbeatTimeout <= 0 || ss.Status != schemas.StepRunning || ss.Attempt != ev.Attempt || ss.HeartbeatDue.IsZero() {
		t.ignore(ReasonStaleHeartbeat, fmt.Sprintf("heartbeat for attempt %d of step %s, which is %s at attempt %d", ev.Attempt, ev.Step, ss.Status, ss.Attempt))
		return
	}
	inst = t.mutable(statekey.Format(inst.Request, inst.Path))
	ss = inst.Steps[step.Name]
	path := statekey.StepPath(inst.Path, step.Name)
	t.eff.ClearTimers = append(t.eff.ClearTimers, Timer{Request: inst.Request, Step: path, Attempt: ss.Attempt, Kind: TimerHeartbeat, At: ss.HeartbeatDue})
	ss.HeartbeatDue = t.now.Add(step.HeartbeatTimeout)
	t.eff.SetTimers = append(t.eff.SetTimers, Timer{Request: inst.Request, Step: path, Attempt: ss.Attempt, Kind: TimerHeartbeat, At: ss.HeartbeatDue})
	if len(ev.Output) > 0 && checkObject(ev.Output, MaxHeartbeatDetails) == nil {
		ss.Heartbeat = ev.Output
	}
}

// heartbeatMissed reports whether the running attempt ss is past its
// heartbeat due time.
func heartbeatMissed(ss *schemas.StepState, now time.Time) bool {
	return !ss.HeartbeatDue.IsZero() && !now.Before(ss.HeartbeatDue)
}
