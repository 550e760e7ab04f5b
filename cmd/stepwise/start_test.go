package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/client"
	"github.com/stepwise-run/stepwise/internal/kfaketest"
	"github.com/stepwise-run/stepwise/kconn"
	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/topology"
)

// clientCmdBroker starts an in-process broker and a stand-in processor
// that answers starts of workflow "ok" with success, "fail" with failure,
// and leaves "slow" running; like the real one it ignores a start of an
// id it has seen. A start of an id beginning "twin-" is answered, without
// any state, by the completion of another workflow's request of that id,
// as when that request's state was not yet readable. It returns the
// --brokers flag.
func clientCmdBroker(t *testing.T) string {
	t.Helper()
	p := topology.DefaultPrefix
	c := kfaketest.Cluster(t, kfake.SeedTopics(2, p.Requests(), p.Completions(), p.State()))
	in, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(p.Requests()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	out, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.TransactionalID("cmd-test"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done; in.Close(); out.Close() })
	go func() {
		defer close(done)
		seen := map[string]bool{}
		for ctx.Err() == nil {
			in.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
				var m struct{ Type, Workflow, ID string }
				if json.Unmarshal(r.Value, &m) != nil || m.Type != "start" || seen[m.ID] {
					return
				}
				seen[m.ID] = true
				now := time.Now().UTC()
				rec := &schemas.Record{Request: m.ID, Workflow: m.Workflow, Partition: r.Partition, Status: schemas.Running,
					Created: now, Updated: now, Steps: map[string]*schemas.StepState{
						"split": {Status: schemas.StepSucceeded, Attempt: 1, Started: now.Add(-3 * time.Second), Ended: now.Add(-1500 * time.Millisecond)},
						"pages": {Status: schemas.StepRunning, Children: 4, Done: 3, Started: now.Add(-time.Second)},
					}}
				comp := schemas.Completion{Request: m.ID, Workflow: m.Workflow, Started: now, Finished: now}
				switch m.Workflow {
				case "ok":
					rec.Status, comp.Status, comp.Output = schemas.StatusSucceeded, schemas.Succeeded, json.RawMessage(`{"n":1}`)
					rec.Output = comp.Output
				case "fail":
					rec.Status, comp.Status = schemas.StatusFailed, schemas.Failed
					rec.Error = &schemas.Failure{Step: "split", Attempt: 3, Message: "bad pdf"}
					comp.Error = rec.Error
				}
				recs := []*kgo.Record{{Topic: p.State(), Partition: r.Partition, Key: r.Key, Value: schemas.EncodeRecord(rec)}}
				if strings.HasPrefix(m.ID, "twin-") {
					recs = recs[:0]
					comp.Workflow, comp.Status, comp.Output = "elsewhere", schemas.Succeeded, json.RawMessage(`{"not":"yours"}`)
				}
				if comp.Status != "" {
					b, _ := json.Marshal(comp)
					recs = append(recs, &kgo.Record{Topic: p.Completions(), Partition: r.Partition, Key: r.Key, Value: b})
				}
				if out.BeginTransaction() != nil {
					return
				}
				for _, x := range recs {
					out.Produce(ctx, x, nil)
				}
				_ = out.Flush(ctx)
				_ = out.EndTransaction(ctx, kgo.TryCommit)
			})
		}
	}()
	return strings.Join(c.ListenAddrs(), ",")
}

func cmdExitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if err != nil {
		return 1
	}
	return 0
}

func TestStartCommand(t *testing.T) {
	brokers := clientCmdBroker(t)
	ctx := context.Background()
	run := func(stdin string, args ...string) (string, string, error) {
		var out, errb bytes.Buffer
		err := startMain(ctx, append([]string{"--brokers", brokers}, args...), strings.NewReader(stdin), &out, &errb)
		return out.String(), errb.String(), err
	}

	out, _, err := run("", "ok", "--input", `{"a": 1}`)
	if err != nil || !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\n$`).MatchString(out) {
		t.Fatalf("start without --wait: %q, %v", out, err)
	}

	out, _, err = run("", "ok", "--id", "r-ok", "--wait", "--input", `{"a": 1}`)
	var comp schemas.Completion
	if err != nil || json.Unmarshal([]byte(out), &comp) != nil || comp.Request != "r-ok" || comp.Status != schemas.Succeeded || cmdCompactJSON(comp.Output) != `{"n":1}` {
		t.Fatalf("start --wait of a succeeding request: %q, %v", out, err)
	}

	file := filepath.Join(t.TempDir(), "in.json")
	if err := os.WriteFile(file, []byte(`{"from": "file"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err = run("", "--wait", "fail", "--input", "@"+file)
	if cmdExitCode(err) != exitFailed || !strings.Contains(out, `"status": "failed"`) || !strings.Contains(out, "bad pdf") {
		t.Fatalf("start --wait of a failing request: exit %d, %q", cmdExitCode(err), out)
	}

	out, errOut, err := run(`{"from": "stdin"}`, "slow", "--input", "@-", "--wait", "--timeout", "700ms", "--id", "r-slow")
	if cmdExitCode(err) != exitTimeout || out != "" || !strings.Contains(errOut, "r-slow still running after 700ms") {
		t.Fatalf("start --wait past the timeout: exit %d, out %q, err %q", cmdExitCode(err), out, errOut)
	}

	_, _, err = run("", "ok", "--input", "{\n \"a\": 1,\n}")
	if err == nil || !strings.Contains(err.Error(), "--input: invalid input; it must be a JSON object: line 3, column 1") {
		t.Fatalf("invalid JSON input: %v", err)
	}
	_, _, err = run("", "ok", "--input", `{"a":`)
	if err == nil || !strings.Contains(err.Error(), "line 1, column 6: unexpected end of JSON input") {
		t.Fatalf("truncated JSON input: %v", err)
	}
	_, _, err = run("", "ok", "--input", "[1]")
	if err == nil || !strings.Contains(err.Error(), "it is an array") {
		t.Fatalf("array input: %v", err)
	}
	_, _, err = run("", "ok", "--id", "no spaces")
	if err == nil || !strings.Contains(err.Error(), "invalid request id") {
		t.Fatalf("invalid id: %v", err)
	}
	if _, _, err = run(""); cmdExitCode(err) != 2 {
		t.Fatalf("start without a workflow: exit %d", cmdExitCode(err))
	}
}

// A start of an id already in use starts nothing and exits 3, whatever
// the workflow; --wait never prints another workflow's completion.
func TestStartOfAnExistingID(t *testing.T) {
	brokers := clientCmdBroker(t)
	run := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		err := startMain(context.Background(), append([]string{"--brokers", brokers}, args...), nil, &out, &errb)
		return out.String(), err
	}
	if out, err := run("ok", "--id", "dup-1", "--wait"); err != nil || !strings.Contains(out, `"workflow": "ok"`) {
		t.Fatalf("first start: %q, %v", out, err)
	}
	for _, args := range [][]string{
		{"fail", "--id", "dup-1"},
		{"fail", "--id", "dup-1", "--wait"},
		{"ok", "--id", "dup-1"},
		{"ok", "--id", "dup-1", "--wait"},
	} {
		out, err := run(args...)
		if cmdExitCode(err) != exitExists || out != "" || err == nil ||
			!strings.Contains(err.Error(), `"dup-1" names a succeeded request of workflow "ok"`) ||
			!strings.Contains(err.Error(), "choose another --id") {
			t.Errorf("start %v: exit %d, out %q, err %v; want exit %d and why", args, cmdExitCode(err), out, err, exitExists)
		}
	}
	out, err := run("ok", "--id", "twin-1", "--wait")
	if cmdExitCode(err) != exitExists || out != "" || err == nil || !strings.Contains(err.Error(), `of workflow "elsewhere"`) {
		t.Fatalf("start --wait meeting another workflow's completion: exit %d, out %q, err %v", cmdExitCode(err), out, err)
	}
}

func TestGetCommand(t *testing.T) {
	brokers := clientCmdBroker(t)
	ctx := context.Background()
	var out, errb bytes.Buffer
	if err := startMain(ctx, []string{"slow", "--brokers", brokers, "--id", "g-1"}, nil, &out, &errb); err != nil {
		t.Fatal(err)
	}
	get := func(args ...string) (string, string, error) {
		var out, errb bytes.Buffer
		err := getMain(ctx, append([]string{"--brokers", brokers}, args...), &out, &errb)
		return out.String(), errb.String(), err
	}
	// The stand-in processor writes the state shortly after the start.
	var table string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		o, _, err := get("g-1")
		if err == nil {
			table = o
			break
		}
	}
	for _, want := range []string{
		"request   g-1", "workflow  slow", "version   1", "run       1", "status    running",
		"STEP   STATUS       ATTEMPT  STARTED                  DURATION  ERROR\n",
		"split  succeeded    1        ", "  1.5s  ",
		"pages  running 3/4  -        ",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}

	o, _, err := get("-o", "json", "g-1")
	var doc struct {
		Request  schemas.Record   `json:"request"`
		Children []schemas.Record `json:"children"`
	}
	if err != nil || json.Unmarshal([]byte(o), &doc) != nil || doc.Request.Request != "g-1" || doc.Request.Steps["pages"].Children != 4 {
		t.Fatalf("get -o json: %v\n%s", err, o)
	}

	_, errOut, err := get("nope")
	if cmdExitCode(err) != 1 || errOut != "stepwise: request nope not found\n" {
		t.Fatalf("get of an unknown request: exit %d, %q", cmdExitCode(err), errOut)
	}
	if _, _, err := get("-o", "yaml", "g-1"); cmdExitCode(err) != 2 {
		t.Fatalf("get -o yaml: exit %d", cmdExitCode(err))
	}
}

func TestCancelAndRetryCommands(t *testing.T) {
	brokers := clientCmdBroker(t)
	ctx := context.Background()
	for _, st := range [][]string{{"slow", "c-1"}, {"fail", "f-1"}} {
		var out, errb bytes.Buffer
		if err := startMain(ctx, []string{st[0], "--brokers", brokers, "--id", st[1]}, nil, &out, &errb); err != nil {
			t.Fatal(err)
		}
		// The stand-in processor writes the state shortly after the start.
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if getMain(ctx, []string{"--brokers", brokers, st[1]}, &out, &errb) == nil {
				break
			}
		}
	}
	run := func(main func(context.Context, []string, io.Writer, io.Writer) error, args ...string) (string, error) {
		var out, errb bytes.Buffer
		err := main(ctx, append([]string{"--brokers", brokers}, args...), &out, &errb)
		if err != nil {
			return err.Error(), err
		}
		return out.String(), nil
	}
	for _, tc := range []struct {
		name string
		main func(context.Context, []string, io.Writer, io.Writer) error
		args []string
		code int
		says string
	}{
		{"cancel of a running request", cancelMain, []string{"c-1", "--reason", "user asked"}, 0, "cancel of c-1 sent\n"},
		{"cancel of an unknown id", cancelMain, []string{"nope"}, exitUnknown, `unknown request "nope"`},
		{"cancel of a finished request", cancelMain, []string{"f-1"}, 1, "request f-1 already failed; nothing to cancel"},
		{"cancel without an id", cancelMain, nil, 2, ""},
		{"retry of a failed request", retryMain, []string{"f-1"}, 0, "retry of f-1 sent: run 2 of workflow fail version 1\n"},
		{"retry of an unknown id", retryMain, []string{"nope"}, exitUnknown, `unknown request "nope"`},
		{"retry of a running request", retryMain, []string{"c-1"}, 1, "request c-1 is running; only a failed or cancelled request can be retried"},
	} {
		said, err := run(tc.main, tc.args...)
		if cmdExitCode(err) != tc.code || !strings.Contains(said, tc.says) {
			t.Errorf("%s: exit %d, %q; want exit %d saying %q", tc.name, cmdExitCode(err), said, tc.code, tc.says)
		}
	}
}

func cmdCompactJSON(b []byte) string {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return "invalid JSON: " + err.Error()
	}
	return buf.String()
}

// The connection settings come from the environment when no flag gives
// them: here the brokers, for start and get.
func TestClientCommandsTakeTheBrokersFromTheEnvironment(t *testing.T) {
	t.Setenv(kconn.EnvBrokers, clientCmdBroker(t))
	var out, errb bytes.Buffer
	if err := startMain(context.Background(), []string{"ok", "--id", "env-1", "--wait", "--timeout", "20s"}, nil, &out, &errb); err != nil {
		t.Fatalf("start with $%s only: %v (%s)", kconn.EnvBrokers, err, errb.String())
	}
	out.Reset()
	if err := getMain(context.Background(), []string{"env-1"}, &out, &errb); err != nil || !strings.Contains(out.String(), "status    succeeded") {
		t.Fatalf("get with $%s only: %v\n%s", kconn.EnvBrokers, err, out.String())
	}
}

func TestGetAttempts(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	st := &client.Status{Request: &schemas.Record{Request: "r", Workflow: "w", Version: 2, Retries: 1, Status: schemas.Running, Created: t0,
		Steps: map[string]*schemas.StepState{"ocr": {Status: schemas.StepRunning, Attempt: 4, Started: t0.Add(3 * time.Second),
			Earlier: []schemas.Attempt{{Attempt: 1, Outcome: "failed", Error: "bad scan", Worker: "ocr-host/42", Started: t0, Ended: t0.Add(time.Second)},
				{Attempt: 3, Outcome: "cancelled", Started: t0.Add(2 * time.Second), Ended: t0.Add(2500 * time.Millisecond)}},
			EarlierDropped: 1},
			"split": {Status: schemas.StepSucceeded, Attempt: 1, Worker: "split-host/7", Output: json.RawMessage(`{"pages":[1,2]}`), Started: t0, Ended: t0.Add(time.Second)}}}}
	var with, without bytes.Buffer
	printStatus(&with, st, t0.Add(5*time.Second), true)
	printStatus(&without, st, t0.Add(5*time.Second), false)
	for _, want := range []string{"version   2\n", "run       2\n", "ocr    failed", "bad scan", "ocr    cancelled", "(1 more earlier attempts)", "ocr    running", "ocr-host/42", "split-host/7", "15 B"} {
		if !strings.Contains(with.String(), want) {
			t.Errorf("--attempts output lacks %q:\n%s", want, with.String())
		}
	}
	if strings.Contains(without.String(), "bad scan") || strings.Contains(without.String(), "WORKER") {
		t.Errorf("earlier attempts shown without --attempts:\n%s", without.String())
	}
}
