package idp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stepwise-run/stepwise/client"
	"github.com/stepwise-run/stepwise/examples/idp"
	"github.com/stepwise-run/stepwise/internal/devbroker"
	"github.com/stepwise-run/stepwise/internal/testlog"
	"github.com/stepwise-run/stepwise/processors"
	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/topology"
	"github.com/stepwise-run/stepwise/worker"
)

// flow is the idp workflow running on an embedded broker with one
// processor and the example's Go handlers, some of them replaced by the
// test (wrap), and a client to start, signal and read requests.
type flow struct {
	t  *testing.T
	cl *client.Client
}

// newFlow starts the stack for the workflow file yaml; wrap may replace
// handlers by queue before they are registered.
func newFlow(t *testing.T, yaml []byte, wrap func(map[string]worker.Handler)) *flow {
	t.Helper()
	set, err := topology.Parse("examples/idp/workflows.yaml", yaml)
	if err != nil {
		t.Fatal(err)
	}
	b, err := devbroker.Start(devbroker.WithAddr("127.0.0.1:0"), devbroker.WithLogger(testlog.New(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	ctx, cancel := context.WithCancel(context.Background())
	prefix := topology.DefaultPrefix
	if err := b.CreateTopics(ctx, set, prefix, 2); err != nil {
		t.Fatal(err)
	}
	conn := b.Conn(prefix)
	p, err := processors.New(processors.Config{Conn: conn, Set: set, ReplicaID: "idp-flow", Logger: testlog.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(worker.WithConn(conn), worker.WithLogger(testlog.New(t)), worker.WithCommitInterval(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	hs := idp.Handlers(idp.WithLatency(0))
	if wrap != nil {
		wrap(hs)
	}
	for q, h := range hs {
		w.Handle(q, h)
	}
	cl, err := client.New(client.WithConn(conn))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for name, run := range map[string]func(context.Context) error{"processor": p.Run, "worker": w.Run} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(ctx); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}()
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		cl.Close()
	})
	return &flow{t: t, cl: cl}
}

func (f *flow) start(id string, input any) {
	f.t.Helper()
	in, err := json.Marshal(input)
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := f.cl.Start(ctx, idp.WorkflowName, id, in); err != nil {
		f.t.Fatal(err)
	}
}

func (f *flow) wait(id string) *client.Completion {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := f.cl.Wait(ctx, id)
	if err != nil {
		f.t.Fatalf("wait for %s: %v", id, err)
	}
	return c
}

// step polls the committed state of request id until the step at path
// has status want, and returns it.
func (f *flow) step(id, path string, want schemas.StepStatus) *schemas.StepState {
	f.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	last := "no such step"
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		st, err := f.cl.Get(ctx, id)
		cancel()
		if err != nil && !errors.Is(err, client.ErrNotFound) {
			f.t.Fatal(err)
		}
		if st != nil {
			for _, s := range st.Steps() {
				if s.Path == path {
					if s.State.Status == want {
						return s.State
					}
					last = string(s.State.Status)
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	f.t.Fatalf("%s: step %s is %s, want %s", id, path, last, want)
	return nil
}

func assembled(t *testing.T, c *client.Completion) idp.Assembled {
	t.Helper()
	if c.Status != schemas.Succeeded {
		t.Fatalf("%s: status %s, error %+v, want succeeded", c.Request, c.Status, c.Error)
	}
	var a idp.Assembled
	if err := json.Unmarshal(c.Output, &a); err != nil {
		t.Fatalf("%s: output %s: %v", c.Request, c.Output, err)
	}
	return a
}

// unsure is a document the classifier is unsure of: letter 3 keywords of
// 5 (dear, sincerely, yours), invoice and contract one each.
var unsure = idp.Document{Name: "unsure.txt", Pages: []string{"Dear party, the invoice: sincerely yours"}}

func TestUnsureDocumentWaitsForReview(t *testing.T) {
	if class, conf := idp.ClassifyConfidence(unsure.Pages[0]); class != "letter" || conf != 0.6 {
		t.Fatalf("the test's document classifies as %s %v, want letter 0.6", class, conf)
	}
	f := newFlow(t, idp.WorkflowsYAML, nil)
	sure := idp.DefaultBundle().Documents[0]
	f.start("review-1", map[string]any{"bundle": idp.Bundle{Documents: []idp.Document{sure, unsure}}})

	// The unsure document waits (the sure one does not: see its result).
	f.step("review-1", "documents[1]/review", schemas.StepRunning)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.cl.Signal(ctx, "review-1", "review", "documents[1]/review", json.RawMessage(`{"label": "invoice"}`)); err != nil {
		t.Fatal(err)
	}
	a := assembled(t, f.wait("review-1"))
	if len(a.Documents) != 2 {
		t.Fatalf("documents %+v", a.Documents)
	}
	if d := a.Documents[0]; d.Class != "invoice" || d.Reviewed || d.Fields["invoice_number"] != "INV-2026-0042" {
		t.Errorf("sure document %+v, want invoice, not reviewed", d)
	}
	if d := a.Documents[1]; d.Class != "invoice" || !d.Reviewed {
		t.Errorf("reviewed document %+v, want the reviewer's invoice", d)
	}
	if a.Summary.Classes["invoice"] != 2 {
		t.Errorf("classes %v", a.Summary.Classes)
	}
}

func TestUnreviewedDocumentTimesOutToClassifier(t *testing.T) {
	short := bytes.Replace(idp.WorkflowsYAML, []byte("timeout: 72h"), []byte("timeout: 1s"), 1)
	if bytes.Equal(short, idp.WorkflowsYAML) {
		t.Fatal("workflows.yaml has no review timeout of 72h to shorten")
	}
	var mu sync.Mutex
	var extracted []json.RawMessage
	f := newFlow(t, short, func(hs map[string]worker.Handler) {
		extract := hs[idp.QueueExtract]
		hs[idp.QueueExtract] = func(ctx context.Context, task *worker.Task) (json.RawMessage, error) {
			mu.Lock()
			extracted = append(extracted, task.Input)
			mu.Unlock()
			return extract(ctx, task)
		}
	})
	f.start("review-2", map[string]any{"bundle": idp.Bundle{Documents: []idp.Document{unsure}}})
	if s := f.step("review-2", "documents[0]/review", schemas.StepRunning); s.Deadline.IsZero() {
		t.Errorf("the waiting review step has no deadline: %+v", s)
	}
	a := assembled(t, f.wait("review-2"))
	if len(a.Documents) != 1 || a.Documents[0].Class != "letter" || a.Documents[0].Reviewed {
		t.Errorf("documents %+v, want the classifier's letter, not reviewed", a.Documents)
	}
	mu.Lock()
	defer mu.Unlock()
	var in map[string]json.RawMessage
	if len(extracted) != 1 || json.Unmarshal(extracted[0], &in) != nil ||
		string(in["class"]) != `"letter"` || string(in["reviewed"]) != "false" || string(in["name"]) != `"unsure.txt"` {
		t.Errorf("extract's inputs %s, want one with the classifier's class", extracted)
	}
}

func TestOCRFailureWithinBoundIsTolerated(t *testing.T) {
	var mu sync.Mutex
	var classified []json.RawMessage
	f := newFlow(t, idp.WorkflowsYAML, func(hs map[string]worker.Handler) {
		ocr, classify := hs[idp.QueueOCR], hs[idp.QueueClassify]
		hs[idp.QueueOCR] = func(ctx context.Context, task *worker.Task) (json.RawMessage, error) {
			if strings.HasSuffix(task.Step, "pages[3]/ocr") && strings.HasPrefix(task.Request, "tolerate") {
				return nil, worker.Permanent(errors.New("page 4 is unreadable"))
			}
			return ocr(ctx, task)
		}
		hs[idp.QueueClassify] = func(ctx context.Context, task *worker.Task) (json.RawMessage, error) {
			mu.Lock()
			classified = append(classified, task.Input)
			mu.Unlock()
			return classify(ctx, task)
		}
	})
	// Ten pages: 10% tolerates one failed page.
	long := idp.Document{Name: "long.txt"}
	for i := range 10 {
		long.Pages = append(long.Pages, strings.Repeat("Dear Ann, page text. ", i+1))
	}
	f.start("tolerate-1", map[string]any{"bundle": idp.Bundle{Documents: []idp.Document{long}}})
	a := assembled(t, f.wait("tolerate-1"))
	if len(a.Documents) != 1 || a.Documents[0].Pages != 9 || a.Documents[0].Class != "letter" {
		t.Errorf("documents %+v, want one letter of 9 pages read", a.Documents)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(classified) != 1 {
		t.Fatalf("classify ran %d times", len(classified))
	}
	var in struct {
		Pages       []idp.Page `json:"pages"`
		PagesFailed []struct {
			Index int    `json:"index"`
			Step  string `json:"step"`
			Error string `json:"error"`
		} `json:"pagesFailed"`
	}
	if err := json.Unmarshal(classified[0], &in); err != nil {
		t.Fatal(err)
	}
	if len(in.Pages) != 9 || len(in.PagesFailed) != 1 || in.PagesFailed[0].Index != 3 ||
		in.PagesFailed[0].Step != "documents[0]/pages[3]/ocr" || !strings.Contains(in.PagesFailed[0].Error, "page 4 is unreadable") {
		t.Errorf("classify's input: %d pages, failed %+v; want 9 and page index 3", len(in.Pages), in.PagesFailed)
	}

	// A document of four pages tolerates none (10% of 4, rounded down):
	// its failed page fails the request.
	f.start("tolerate-2", map[string]any{"bundle": idp.Bundle{Documents: []idp.Document{long, {Name: "short.txt", Pages: long.Pages[:4]}}}})
	if c := f.wait("tolerate-2"); c.Status != schemas.Failed {
		t.Errorf("tolerate-2: status %s, want failed (the short document's page 4 has no tolerance)", c.Status)
	}
}

func TestFailedRequestNotifies(t *testing.T) {
	notified := make(chan json.RawMessage, 4)
	f := newFlow(t, idp.WorkflowsYAML, func(hs map[string]worker.Handler) {
		notify := hs[idp.QueueNotify]
		hs[idp.QueueNotify] = func(ctx context.Context, task *worker.Task) (json.RawMessage, error) {
			out, err := notify(ctx, task)
			if err == nil {
				notified <- out
			}
			return out, err
		}
	})
	f.start("notify-1", map[string]any{"bundle": map[string]any{"documents": []any{map[string]any{"name": "empty.pdf", "pages": []string{}}}}})
	c := f.wait("notify-1")
	if c.Status != schemas.Failed || c.Error == nil || c.Error.Step != idp.QueueSplit || !strings.Contains(c.Error.Message, "has no pages") {
		t.Fatalf("status %s, error %+v; want split's failure", c.Status, c.Error)
	}
	select {
	case out := <-notified:
		var n idp.Notification
		if err := json.Unmarshal(out, &n); err != nil {
			t.Fatal(err)
		}
		if n.Request != "notify-1" || n.Step != idp.QueueSplit || n.Attempt != 1 || !strings.Contains(n.Error, "has no pages") ||
			!strings.Contains(n.Message, "idp request notify-1 failed at split") {
			t.Errorf("notification %+v", n)
		}
	default:
		t.Fatal("the request failed without running notify")
	}
}
