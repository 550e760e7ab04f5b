package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stepwise-run/stepwise/client"
	"github.com/stepwise-run/stepwise/internal/devbroker"
	"github.com/stepwise-run/stepwise/internal/testlog"
	"github.com/stepwise-run/stepwise/kconn"
	"github.com/stepwise-run/stepwise/processors"
	"github.com/stepwise-run/stepwise/topology"
	"github.com/stepwise-run/stepwise/view"
	"github.com/stepwise-run/stepwise/worker"
)

// testYAML has a fan-out between two plain steps, a second workflow to
// check that an id cannot be reused across workflows, and one with a step
// that waits for a signal.
const testYAML = `
workflows:
  - name: chain
    defaults:
      retry: { maxAttempts: 2, initial: 10ms, max: 10ms }
    steps:
      - name: a
      - name: fan
        task: per-item
        depends: [a]
      - name: b
        depends: [fan]
    tasks:
      - name: per-item
        itemListKey: items
        steps:
          - name: x
          - name: y
            depends: [x]
  - name: other
    steps:
      - name: o
  - name: review
    steps:
      - name: first
        queue: a
      - name: approve
        depends: [first]
        wait: {signal: approve}
      - name: after
        queue: o
        depends: [approve]
`

// testEnv is an embedded broker with a processor, a worker and an API
// server, all in this process.
type testEnv struct {
	t      testing.TB
	broker *devbroker.Broker
	set    *topology.Set
	srv    *Server
	base   string // http://host:port
	sender *countingSender

	// release unblocks the "a" steps of inputs with "hold": true.
	release chan struct{}
	// token is sent as a bearer token by do when set.
	token string
}

func testLogger(t testing.TB) *slog.Logger { return testlog.New(t) }

// countingSender counts the starts and cancels it passes on.
type countingSender struct {
	Sender
	starts  atomic.Int64
	cancels atomic.Int64
}

func (c *countingSender) Cancel(ctx context.Context, id, reason string) error {
	c.cancels.Add(1)
	return c.Sender.Cancel(ctx, id, reason)
}

func (c *countingSender) Start(ctx context.Context, workflow, id string, input json.RawMessage, opts ...client.StartOption) (string, error) {
	c.starts.Add(1)
	return c.Sender.Start(ctx, workflow, id, input, opts...)
}

func newTestEnv(t testing.TB, tweak ...func(*Config)) *testEnv {
	t.Helper()
	log := testLogger(t)
	b, err := devbroker.Start(devbroker.WithAddr("127.0.0.1:0"), devbroker.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	set, err := topology.Parse("test.yaml", []byte(testYAML))
	if err != nil {
		t.Fatal(err)
	}
	conn := b.Conn(topology.DefaultPrefix)
	ctx, cancel := context.WithCancel(context.Background())
	if err := b.CreateTopics(ctx, set, conn.Prefix, 3); err != nil {
		t.Fatal(err)
	}
	e := &testEnv{t: t, broker: b, set: set, release: make(chan struct{})}

	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	run := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("%s: %v", name, err)
			}
		}()
	}

	p, err := processors.New(processors.Config{Conn: conn, Set: set, ReplicaID: "p1", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	run("processor", p.Run)

	w, err := worker.New(worker.WithConn(conn), worker.WithLogger(log), worker.WithID(testWorkerID))
	if err != nil {
		t.Fatal(err)
	}
	w.Handle("a", e.stepA)
	w.Handle("x", echo)
	w.Handle("y", echo)
	w.Handle("b", stepB)
	w.Handle("o", echo)
	run("worker", w.Run)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ks, err := newSender(conn)
	if err != nil {
		t.Fatal(err)
	}
	e.sender = &countingSender{Sender: ks}
	cfg := Config{Listener: ln, Conn: conn, Set: set, Logger: log, Sender: e.sender}
	for _, f := range tweak {
		f(&cfg)
	}
	e.srv, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	run("api", e.srv.Run)
	e.base = "http://" + ln.Addr().String()
	select {
	case <-e.srv.View().Ready():
	case <-time.After(20 * time.Second):
		t.Fatal("view not ready")
	}
	return e
}

// stepA passes its input on plus a list of n items ("n" in the input),
// after waiting for release when the input has "hold".
func (e *testEnv) stepA(ctx context.Context, t *worker.Task) (json.RawMessage, error) {
	var in map[string]any
	if err := t.Decode(&in); err != nil {
		return nil, worker.Permanent(err)
	}
	if in["hold"] == true {
		select {
		case <-e.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	n, _ := in["n"].(float64)
	items := make([]any, int(n))
	for i := range items {
		items[i] = map[string]any{"i": i}
	}
	in["items"] = items
	return worker.JSON(in)
}

func echo(_ context.Context, t *worker.Task) (json.RawMessage, error) {
	var in map[string]any
	if err := t.Decode(&in); err != nil {
		return nil, worker.Permanent(err)
	}
	in[t.Queue] = t.Attempt
	return worker.JSON(in)
}

// stepB fails for good when the input has "fail": the message, or passes
// the input on (with "big": a long string when asked).
func stepB(_ context.Context, t *worker.Task) (json.RawMessage, error) {
	var in map[string]any
	if err := t.Decode(&in); err != nil {
		return nil, worker.Permanent(err)
	}
	if msg, ok := in["fail"].(string); ok {
		return nil, worker.Permanent(errors.New(msg))
	}
	if n, ok := in["big"].(float64); ok {
		in["blob"] = strings.Repeat("z", int(n))
	}
	in["b"] = "done"
	return worker.JSON(in)
}

// do sends a request and decodes a JSON answer into out (when not nil); it
// returns the status code and the raw body.
func (e *testEnv) do(method, path string, body string, out any, hdr ...string) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.base+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
	}
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode, b
}

// expectError checks an error answer: the code and a JSON body whose
// error contains want.
func (e *testEnv) expectError(method, path, body string, code int, want string, hdr ...string) {
	e.t.Helper()
	var ae apiError
	got, raw := e.do(method, path, body, &ae, hdr...)
	if got != code || !strings.Contains(ae.Error, want) {
		e.t.Errorf("%s %s: %d %s, want %d with error containing %q", method, path, got, raw, code, want)
	}
}

// waitStatus polls a request until its status is want.
func (e *testEnv) waitStatus(id, want string) *view.Status {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var st view.Status
		code, raw := e.do("GET", "/api/v1/requests/"+id, "", &st)
		if code == http.StatusOK && st.Status == want {
			return &st
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("request %s: %d %s, want status %s", id, code, raw, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sseEvent is one server-sent event.
type sseEvent struct {
	name string
	data []byte
}

// readEvents reads events from an event stream until stop says so.
func readEvents(t *testing.T, body io.Reader, stop func(sseEvent) bool) []sseEvent {
	t.Helper()
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	var out []sseEvent
	var cur sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.name != "" {
				out = append(out, cur)
				if stop(cur) {
					return out
				}
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "event: "):
			cur.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			cur.data = append(cur.data, strings.TrimPrefix(line, "data: ")...)
		}
	}
	t.Fatalf("event stream ended after %d events: %v", len(out), sc.Err())
	return nil
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(v); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func fmtID(prefix string, i int) string { return fmt.Sprintf("%s-%03d", prefix, i) }

func mustParse(t *testing.T, yaml string) *topology.Set {
	t.Helper()
	set, err := topology.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// testConn is a connection that is never dialled.
func testConn() kconn.Config {
	return kconn.Config{Brokers: []string{"127.0.0.1:1"}, Prefix: topology.DefaultPrefix}
}

// testWorkerID is the id the test environment's worker sends on its results.
const testWorkerID = "api-test-worker/1"
