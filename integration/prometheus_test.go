//go:build integration

package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stepwise-run/stepwise/processors"
)

// prometheusBin is the Prometheus server the metrics test runs: $PROMETHEUS
// or prometheus on PATH (Debian's package; .ci/run installs it).
func prometheusBin(t *testing.T) string {
	if p := os.Getenv("PROMETHEUS"); p != "" {
		return p
	}
	p, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("the metrics test needs a Prometheus server: install Debian's prometheus package or set PROMETHEUS=/path/to/prometheus (%v)", err)
	}
	return p
}

// freeAddr returns a loopback address with a port nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestPrometheus runs a processor, an API and a Go worker as processes with
// metrics on, lets a real Prometheus server scrape them while requests run
// through the API, and asks Prometheus (its HTTP query API) whether the
// step counters equal the requests run and whether consumer lag returns to
// zero.
func TestPrometheus(t *testing.T) {
	e := newEnv(t)
	prom := prometheusBin(t)
	s := e.newStack(chainYAML, 3)
	procAddr, apiAddr, workerAddr, promAddr := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)

	s.processor("p1", "--http", procAddr, "--metrics")
	token := "metrics-test-token-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	apiArgs := append(append([]string{"api", "--http", apiAddr, "--metrics"}, s.fileFlags()...), s.conn...)
	e.spawn("api", s.stepwise, []string{"STEPWISE_API_TOKENS=test start,read " + token}, apiArgs...)
	s.echoWorker("w1", time.Millisecond, "--metrics-addr", workerAddr)

	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: processor
    static_configs: [{targets: [%q]}]
  - job_name: api
    static_configs: [{targets: [%q]}]
  - job_name: worker
    static_configs: [{targets: [%q]}]
`, procAddr, apiAddr, workerAddr)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	e.spawn("prometheus", prom, nil, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr, "--log.level=warn")
	q := &promQuery{t: t, base: "http://" + promAddr}

	// Every target answers before the load starts; the processor is
	// ready (group joined, partitions restored).
	waitReady(t, "http://"+procAddr+"/readyz", 60*time.Second)
	waitReady(t, "http://"+apiAddr+"/readyz", 60*time.Second)
	q.eventually(`count(up == 1)`, 3, 60*time.Second)

	// Load: requests started through the API by 8 clients at once, each
	// waiting for its request to finish.
	const n = 300
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	for c := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := c; i < n; i += 8 {
				body := bytes.NewBufferString(fmt.Sprintf(`{"i": %d}`, i))
				req, _ := http.NewRequest("POST", "http://"+apiAddr+"/api/v1/workflows/chain/requests?wait=60s", body)
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := http.DefaultClient.Do(req)
				ok := err == nil && resp.StatusCode == 200
				if err == nil {
					var c struct{ Status string }
					_ = json.NewDecoder(resp.Body).Decode(&c)
					resp.Body.Close()
					ok = ok && c.Status == "succeeded"
				}
				if !ok {
					mu.Lock()
					failed++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if failed > 0 {
		t.Fatalf("%d of %d requests did not succeed", failed, n)
	}
	t.Logf("%d requests run through the API", n)

	// What Prometheus scraped equals what ran: 3 steps per request.
	for _, c := range []struct {
		expr string
		want float64
	}{
		{`sum(stepwise_requests_started_total{workflow="chain"})`, n},
		{`sum(stepwise_requests_finished_total{workflow="chain",status="succeeded"})`, n},
		{`sum(stepwise_steps_started_total{workflow="chain"})`, 3 * n},
		{`sum(stepwise_steps_succeeded_total{workflow="chain"})`, 3 * n},
		{`sum(stepwise_steps_started_total{workflow="chain",step="b"})`, n},
		{`sum(stepwise_step_duration_seconds_count{workflow="chain"})`, 3 * n},
		{`sum(stepwise_request_duration_seconds_count{workflow="chain"})`, n},
		{`sum(stepwise_worker_tasks_total{outcome="succeeded"})`, 3 * n},
		{`sum(stepwise_worker_queue_wait_seconds_count)`, 3 * n},
		{`sum(stepwise_api_requests_total{route="POST /api/v1/workflows/{name}/requests",code="200"})`, n},
		{`sum(stepwise_requests_in_flight)`, 0},
	} {
		q.eventually(c.expr, c.want, 30*time.Second)
	}
	// Lag of the processors' group and of each queue's workers comes
	// back to zero once everything is consumed.
	// (The processors' group reads two topics, each queue's workers one.)
	groups := map[string]float64{processors.GroupID(e.Prefix): 2, e.Prefix.WorkerGroup("a"): 1, e.Prefix.WorkerGroup("b"): 1, e.Prefix.WorkerGroup("c"): 1}
	for group, topics := range groups {
		q.eventually(fmt.Sprintf(`count(stepwise_consumer_lag{group=%q})`, group), topics, 30*time.Second)
		q.eventually(fmt.Sprintf(`max(stepwise_consumer_lag{group=%q})`, group), 0, 60*time.Second)
	}
	t.Logf("largest task lag seen during the load: %v", q.value(fmt.Sprintf(`max(max_over_time(stepwise_consumer_lag{group=~%q}[10m]))`, string(e.Prefix)+"workers.*")))
	if v := q.value(`sum(stepwise_kafka_produce_records_total{component="processor"})`); v < 3*n {
		t.Errorf("kprom: the processor produced %v records, want at least %d (tasks)", v, 3*n)
	}
}

// waitReady waits until url answers 200.
func waitReady(t *testing.T, url string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d %s", url, resp.StatusCode, b)
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("%s: %v", url, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// promQuery asks a Prometheus server's HTTP API.
type promQuery struct {
	t    *testing.T
	base string
}

// value returns the scalar result of an instant query (NaN-free: an empty
// result is -1).
func (q *promQuery) value(expr string) float64 {
	q.t.Helper()
	v, err := q.query(expr)
	if err != nil {
		q.t.Fatalf("query %s: %v", expr, err)
	}
	return v
}

func (q *promQuery) query(expr string) (float64, error) {
	resp, err := http.Get(q.base + "/api/v1/query?query=" + url.QueryEscape(expr))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var out struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return 0, err
	}
	if out.Status != "success" {
		return 0, fmt.Errorf("%s", out.Error)
	}
	if len(out.Data.Result) == 0 {
		return -1, nil
	}
	s, _ := out.Data.Result[0].Value[1].(string)
	return strconv.ParseFloat(strings.TrimSpace(s), 64)
}

// eventually waits until expr evaluates to want.
func (q *promQuery) eventually(expr string, want float64, timeout time.Duration) {
	q.t.Helper()
	deadline := time.Now().Add(timeout)
	var got float64
	var err error
	for {
		got, err = q.query(expr)
		if err == nil && got == want {
			q.t.Logf("prometheus: %s = %v", expr, got)
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	q.t.Errorf("prometheus: %s = %v (%v), want %v", expr, got, err, want)
}
