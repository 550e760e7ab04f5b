//go:build integration

package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stepwise-run/stepwise/examples/idp"
)

// jaegerEndpoints returns the OTLP endpoint and query URL of the Jaeger
// that integration/jaeger/up started: JAEGER_RUN_DIR names its run
// directory (.ci/run sets it). The test fails without one: it checks a
// real trace backend, never a stand-in.
func jaegerEndpoints(t *testing.T) (otlp, query string) {
	t.Helper()
	dir := os.Getenv("JAEGER_RUN_DIR")
	if dir == "" {
		t.Fatal("JAEGER_RUN_DIR is not set: start Jaeger with integration/jaeger/up and export JAEGER_RUN_DIR=integration/jaeger/.run (.ci/run does)")
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("Jaeger run dir %s: %v (is integration/jaeger/up running?)", dir, err)
		}
		return strings.TrimSpace(string(b))
	}
	return read("otlp-endpoint"), read("query-url")
}

// jaegerSpan is what the test reads of a span in Jaeger's query API.
type jaegerSpan struct {
	TraceID    string `json:"traceID"`
	SpanID     string `json:"spanID"`
	Operation  string `json:"operationName"`
	ProcessID  string `json:"processID"`
	References []struct {
		RefType string `json:"refType"`
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
}

type jaegerTrace struct {
	TraceID   string       `json:"traceID"`
	Spans     []jaegerSpan `json:"spans"`
	Processes map[string]struct {
		ServiceName string `json:"serviceName"`
	} `json:"processes"`
}

func getTraces(query string, params url.Values) ([]jaegerTrace, error) {
	resp, err := http.Get(query + "/api/traces?" + params.Encode())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /api/traces?%s: %s: %s", params.Encode(), resp.Status, body)
	}
	var out struct {
		Data []jaegerTrace `json:"data"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, err
	}
	return out.Data, nil
}

// TestTracingJaeger starts one idp request through the HTTP API with a
// traceparent, runs it through a traced processor and traced workers in
// Go (split, render, layout, extract, assemble), Python (ocr) and
// TypeScript (classify), and checks through Jaeger's query API that the
// request is one trace: spans of the API, the processor and the three
// workers, every span's parent in the trace, the API's span a child of the
// caller's.
func TestTracingJaeger(t *testing.T) {
	otlp, query := jaegerEndpoints(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	py := filepath.Join(root, "sdk/python/.venv/bin/python")
	classify := filepath.Join(root, "sdk/typescript/dist/examples/idp-classify.js")
	for _, f := range []string{py, classify} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("%v: build the SDKs first (make -C sdk/python venv; make -C sdk/typescript build)", err)
		}
	}
	e := newEnv(t)
	s := e.newStackOf([][]byte{idp.WorkflowsYAML}, 2)
	// Every span sampled, sent at once.
	otel := func(service string) []string {
		return []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + otlp, "OTEL_SERVICE_NAME=" + service, "OTEL_BSP_SCHEDULE_DELAY=100",
			idp.LatencyEnv + "=1ms"}
	}
	brokers := strings.Join(e.Seeds, ",")
	s.procEnv = otel("stepwise-processor")
	s.processor("p1")
	e.spawn("go-workers", s.stepwise, otel("idp-go"), append([]string{"workers", "--example", "idp", "--skip-queues", "ocr,classify"}, s.conn...)...)
	e.spawn("ocr-python", py, otel("idp-ocr-python"), filepath.Join(root, "examples/idp/python/ocr.py"), "--brokers", brokers, "--prefix", string(e.Prefix))
	e.spawn("classify-ts", "node", otel("idp-classify-ts"), classify, "--brokers", brokers, "--prefix", string(e.Prefix))
	addr := freeAddr(t)
	e.spawn("api", s.stepwise, otel("stepwise-api"), append(append([]string{"api", "--http", addr}, s.fileFlags()...), s.conn...)...)
	s.waitOwned(2, "p1")

	const traceID = "5b8efff798038103d269b633813fc60c"
	const caller = "00-" + traceID + "-eee19b7ec3c1b174-01"
	var id string
	deadline := time.Now().Add(60 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/api/v1/workflows/idp/requests?wait=60s&id=traced-idp-1", bytes.NewReader([]byte(`{}`)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("traceparent", caller)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var out struct {
				ID     string `json:"id"`
				Status string `json:"status"`
			}
			_ = json.Unmarshal(body, &out)
			if resp.StatusCode == http.StatusOK && out.Status == "succeeded" {
				id = out.ID
				break
			}
			err = fmt.Errorf("%s: %s", resp.Status, body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("start idp through the API: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}

	want := []string{"stepwise-api", "stepwise-processor", "idp-go", "idp-ocr-python", "idp-classify-ts"}
	var tr jaegerTrace
	var services []string
	deadline = time.Now().Add(30 * time.Second)
	for {
		traces, err := getTraces(query, url.Values{"service": {"stepwise-processor"}, "tags": {fmt.Sprintf(`{"stepwise.request":%q}`, id)}, "limit": {"20"}})
		services = nil
		if err == nil && len(traces) == 1 {
			tr = traces[0]
			for _, p := range tr.Processes {
				if !slices.Contains(services, p.ServiceName) {
					services = append(services, p.ServiceName)
				}
			}
			if len(services) >= len(want) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("request %s in Jaeger: %d traces found (err %v), services %v, want one trace with %v", id, len(traces), err, services, want)
		}
		time.Sleep(time.Second)
	}
	for _, svc := range want {
		if !slices.Contains(services, svc) {
			t.Errorf("the trace has no span of %s (services %v)", svc, services)
		}
	}
	if tr.TraceID != traceID {
		t.Errorf("trace id %s, want the caller's %s", tr.TraceID, traceID)
	}
	ids := map[string]bool{}
	for _, sp := range tr.Spans {
		ids[sp.SpanID] = true
	}
	ops := map[string]int{}
	for _, sp := range tr.Spans {
		ops[tr.Processes[sp.ProcessID].ServiceName+": "+strings.Fields(sp.Operation)[0]]++
		for _, ref := range sp.References {
			if ref.RefType == "CHILD_OF" && !ids[ref.SpanID] && ref.SpanID != "eee19b7ec3c1b174" {
				t.Errorf("span %s (%s) has a parent %s that is not in the trace", sp.SpanID, sp.Operation, ref.SpanID)
			}
		}
	}
	fmt.Printf("tracing: request %s is trace %s: %d spans %v\n", id, tr.TraceID, len(tr.Spans), ops)
	for _, op := range []string{"stepwise-processor: request", "stepwise-processor: step", "idp-ocr-python: handle", "idp-classify-ts: handle", "idp-go: handle", "stepwise-api: POST"} {
		if ops[op] == 0 {
			t.Errorf("no %q span in the trace (%v)", op, ops)
		}
	}
}
