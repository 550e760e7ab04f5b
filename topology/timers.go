package topology

import "slices"

// Timers a definition can set beyond a step's timeout and retry backoff:
// a sleep step (`sleep: 10m`), which is never dispatched and succeeds
// when the time has passed, passing its input on as its output; and a
// workflow's `deadline: 1h`, which fails a run of a request still
// running that long after it started (or was retried), stopping its
// running tasks as a cancel does.

func init() {
	Keys["workflow"] = append(slices.Clip(Keys["workflow"]), "deadline")
	Keys["step"] = append(slices.Clip(Keys["step"]), "sleep")
}

// checkDeadline checks a workflow's deadline: positive when set.
func checkDeadline(w *workflowSpec, l *errorList) {
	if w.deadline.set && w.deadline.val <= 0 {
		l.add(w.deadline.at, w.path+".deadline", "must be positive, got %s (leave it out for no deadline)", w.deadline.val)
	}
}

// checkSleep checks a sleep step s (sleep set). The rules:
//   - sleep is positive;
//   - a sleep step is not dispatched: it has no task, queue, timeout,
//     retry or wait.
func checkSleep(s *stepSpec, l *errorList) {
	if s.sleep.val <= 0 {
		l.add(s.sleep.at, s.path+".sleep", "must be positive, got %s", s.sleep.val)
	}
	const why = "a sleep step is not dispatched: it succeeds once its time has passed"
	switch {
	case s.task.set:
		l.add(s.task.at, s.path+".task", "%s; it cannot fan out", why)
	case s.wait != nil:
		l.add(s.wait.at, s.wait.path, "a step either sleeps or waits for a signal, not both")
	}
	if s.queue.set || s.transport.set {
		l.add(s.queue.at, s.path+".queue", "%s; it has no queue", why)
	}
	if s.timeout.set {
		l.add(s.timeout.at, s.path+".timeout", "%s; it has no timeout", why)
	}
	if s.retry != nil {
		l.add(s.retry.at, s.retry.path, "%s; it has no retry", why)
	}
}
