//go:build integration

package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/examples/idp"
	"github.com/stepwise-run/stepwise/internal/devbroker"
	"github.com/stepwise-run/stepwise/processors"
	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/worker"
)

// report is what the checker found. It reads only what the soak's clients
// can see: the completions topic (read_committed) and the workers' own
// execution logs, never the processors' state.
type report struct {
	faults        map[string]int
	requests      int
	completed     int
	duplicates    int // requests completed more than once
	lost          int // acknowledged starts without a completion
	wrong         int // completions whose status or output is not the expected one
	unrun         int // completed linear3/fanout100 requests a step of which no worker logged
	zombieTxns    int // transactions open in a paused processor
	zombieVisible int // records of those transactions visible to read_committed readers
	tasksRun      int // tasks the workers logged as done
	rerun         int // tasks (request, step) logged more than once
	procExits     int // processes that exited without being told to
	stall         time.Duration
	takeovers     []time.Duration
	examples      []string // a few of the problems of each kind, for the log
	noted         map[string]int
}

func (s *soak) check(reqs []started) *report {
	r := &report{requests: len(reqs), faults: map[string]int{}}
	s.mu.Lock()
	for k, n := range s.mu.faults {
		r.faults[k] = n
	}
	resumes, zombies := slices.Clone(s.mu.resumes), slices.Clone(s.mu.zombies)
	s.mu.Unlock()
	runs := s.executions()
	for _, n := range runs {
		r.tasksRun += n
		if n > 1 {
			r.rerun++
		}
	}
	for _, p := range s.procs {
		r.procExits += p.exits()
	}

	s.comp.mu.Lock()
	defer s.comp.mu.Unlock()
	for _, q := range reqs {
		cs := s.comp.got[q.id]
		switch {
		case len(cs) == 0:
			r.lost++
			r.note("lost", "%s (%s): no completion", q.id, q.workflow)
			continue
		case len(cs) > 1:
			r.duplicates++
			var each []string
			for _, c := range cs {
				each = append(each, fmt.Sprintf("%s on partition %d at %s", c.Status, c.partition, c.at.Format("15:04:05.000")))
			}
			r.note("duplicate", "%s (%s): %d completions: %s", q.id, q.workflow, len(cs), strings.Join(each, ", "))
		}
		r.completed++
		if cs[0].Status != schemas.Succeeded || !sameJSON(cs[0].Output, q.want) {
			r.wrong++
			why := ""
			if e := cs[0].Error; e != nil {
				why = fmt.Sprintf(" (step %s attempt %d: %s)", e.Step, e.Attempt, e.Message)
			}
			r.note("wrong", "%s (%s): %s%s %.200s, want %.200s", q.id, q.workflow, cs[0].Status, why, cs[0].Output, q.want)
		}
		for _, step := range stepsOf(q.workflow) {
			if runs[q.id+" "+step] == 0 {
				r.unrun++
				r.note("unrun", "%s (%s): completed, but no worker logged step %s", q.id, q.workflow, step)
				break
			}
		}
	}
	r.stall, r.takeovers = s.comp.timing(resumes)
	r.zombieTxns = len(zombies)
	for _, z := range zombies {
		n := s.visible(z)
		r.zombieVisible += n
		if n > 0 {
			r.note("zombie", "paused replica %s: %d records of its open transaction (producer %d epoch %d) became visible", z.replica, n, z.pid, z.epoch)
		}
	}
	return r
}

// note keeps the first 8 problems of each kind.
func (r *report) note(kind, format string, args ...any) {
	if r.noted == nil {
		r.noted = map[string]int{}
	}
	if r.noted[kind] < 8 {
		r.noted[kind]++
		r.examples = append(r.examples, fmt.Sprintf(format, args...))
	}
}

// verdict fails the soak for anything but exactly one correct completion
// per request with nothing of a zombie visible.
func (r *report) verdict() error {
	if r.lost+r.duplicates+r.wrong+r.unrun+r.zombieVisible == 0 && r.completed == r.requests {
		return nil
	}
	return fmt.Errorf("chaos soak: %d lost, %d completed twice, %d wrong, %d completed without a worker's run, %d zombie records visible; first problems:\n  %s",
		r.lost, r.duplicates, r.wrong, r.unrun, r.zombieVisible, strings.Join(r.examples, "\n  "))
}

func (r *report) table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "| fault | injected |\n|---|---|\n")
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range r.faults {
			if !yield(k) {
				return
			}
		}
	}) {
		fmt.Fprintf(&b, "| %s | %d |\n", k, r.faults[k])
	}
	p50, pmax := percentile(r.takeovers, 0.5), percentile(r.takeovers, 1)
	fmt.Fprintf(&b, "\n| requests | completed | duplicate completions | lost | wrong output | tasks run | tasks run more than once | zombie txns | zombie records visible | longest stall | takeover p50 / max |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	fmt.Fprintf(&b, "| %d | %d | %d | %d | %d | %d | %d | %d | %d | %.1f s | %.1f s / %.1f s |\n",
		r.requests, r.completed, r.duplicates, r.lost, r.wrong, r.tasksRun, r.rerun, r.zombieTxns, r.zombieVisible,
		r.stall.Seconds(), p50.Seconds(), pmax.Seconds())
	if r.procExits > 0 {
		fmt.Fprintf(&b, "\n%d process exits not caused by the fault loop (restarted by the supervisor)\n", r.procExits)
	}
	return b.String()
}

func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(ds))
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// timing returns the longest gap between two completions on one partition
// and, for each processor kill or pause, the time until every partition
// that completed anything afterwards had completed again.
func (c *completions) timing(resumes []time.Time) (stall time.Duration, takeovers []time.Duration) {
	byPart := map[int32][]time.Time{}
	for _, cs := range c.got {
		for _, x := range cs {
			byPart[x.partition] = append(byPart[x.partition], x.at)
		}
	}
	for _, ts := range byPart {
		slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
		for i := 1; i < len(ts); i++ {
			stall = max(stall, ts[i].Sub(ts[i-1]))
		}
	}
	for _, at := range resumes {
		var worst time.Duration
		for _, ts := range byPart {
			i, _ := slices.BinarySearchFunc(ts, at, func(a, b time.Time) int { return a.Compare(b) })
			if i < len(ts) {
				worst = max(worst, ts[i].Sub(at))
			}
		}
		takeovers = append(takeovers, worst)
	}
	return stall, takeovers
}

// stepsOf lists the step paths every request of workflow runs (idp's
// depend on its bundle and are not listed).
func stepsOf(workflow string) []string {
	switch workflow {
	case "linear3":
		return []string{"a", "b", "c"}
	case "fanout100":
		out := []string{"split", "join"}
		for i := range 100 {
			out = append(out, fmt.Sprintf("items[%d]/work", i))
		}
		return out
	}
	return nil
}

// executions counts the "step done" lines of every worker log by
// "<request> <step path>": the Go and Python workers write key=value
// lines, the TypeScript worker JSON.
func (s *soak) executions() map[string]int {
	runs := map[string]int{}
	for _, p := range s.procs {
		if p.kind != "worker" {
			continue
		}
		f, err := os.Open(p.log)
		if err != nil {
			s.t.Errorf("worker log: %v", err)
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if req, step, ok := stepDone(sc.Text()); ok {
				runs[req+" "+step]++
			}
		}
		f.Close()
	}
	return runs
}

// stepDone parses one worker log line.
func stepDone(line string) (request, step string, ok bool) {
	if strings.HasPrefix(line, "{") {
		var m struct {
			Msg     string `json:"msg"`
			Request string `json:"request"`
			Step    string `json:"step"`
		}
		if json.Unmarshal([]byte(line), &m) != nil || m.Msg != "step done" {
			return "", "", false
		}
		return m.Request, m.Step, true
	}
	if !strings.Contains(line, `msg="step done"`) {
		return "", "", false
	}
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, "request="); ok {
			request = strings.Trim(v, `"`)
		} else if v, ok := strings.CutPrefix(f, "step="); ok {
			step = strings.Trim(v, `"`)
		}
	}
	return request, step, request != "" && step != ""
}

// visible counts the committed records of a zombie's transaction: those
// of its producer id and epoch after the last stable offset its
// partitions had when it froze.
func (s *soak) visible(z zombieTxn) int {
	parts := map[string]map[int32]kgo.Offset{}
	for topic, ps := range z.lso {
		parts[topic] = map[int32]kgo.Offset{}
		for p, o := range ps {
			parts[topic][p] = kgo.NewOffset().At(o)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.c.seeds...), kgo.ConsumePartitions(parts), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		s.t.Error(err)
		return 0
	}
	defer cl.Close()
	n := 0
	for empty := 0; empty < 3; {
		ctx, cancel := context.WithTimeout(s.ctx, 2*time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		if fs.NumRecords() == 0 {
			empty++
			continue
		}
		empty = 0
		fs.EachRecord(func(r *kgo.Record) {
			if r.ProducerID == z.pid && r.ProducerEpoch == z.epoch {
				n++
			}
		})
	}
	return n
}

func sameJSON(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return bytes.Equal(ja, jb)
}

// referenceIDP runs one idp request with every worker in Go on an
// in-process broker and processor, apart from the soak: its output is
// what every idp request of the soak, OCR in Python and classification in
// TypeScript, must give.
func referenceIDP(t *testing.T) json.RawMessage {
	t.Helper()
	b, err := devbroker.Start(devbroker.WithAddr("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	set, err := idp.Definitions()
	if err != nil {
		t.Fatal(err)
	}
	conn := b.Conn("ref.")
	if err := b.CreateTopics(ctx, set, conn.Prefix, 1); err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	p, err := processors.New(processors.Config{Conn: conn, Set: set, ReplicaID: "ref", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(worker.WithConn(conn), worker.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	for q, h := range idp.Handlers(idp.WithLatency(0)) {
		w.Handle(q, h)
	}
	rctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }() // before the broker closes
	wg.Go(func() { p.Run(rctx) })
	wg.Go(func() { w.Run(rctx) })
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.ConsumeTopics(conn.Prefix.Completions()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	start := `{"type":"start","workflow":"idp","id":"reference","input":{}}`
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: conn.Prefix.Requests(), Key: []byte("reference"), Value: []byte(start)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatal(errors.Join(errors.New("reference idp request did not complete"), err))
		}
		var out json.RawMessage
		fs.EachRecord(func(r *kgo.Record) {
			var c schemas.Completion
			if json.Unmarshal(r.Value, &c) == nil && c.Status == schemas.Succeeded {
				out = c.Output
			}
		})
		if out != nil {
			return out
		}
	}
}
