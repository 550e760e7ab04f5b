package api

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stepwise-run/stepwise/metrics"
)

// TestProbesAndMetrics checks /healthz, /readyz and /metrics of the API:
// no token needed (tokens are configured), and the API's counters count
// the calls made, by route pattern (never by request id).
func TestProbesAndMetrics(t *testing.T) {
	reg := metrics.NewRegistry()
	e := newTestEnv(t, func(c *Config) { c.Tokens = mustTokens(t); c.Metrics = reg })
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready"} {
		resp, err := http.Get(e.base + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != want {
			t.Errorf("GET %s: %d %q", path, resp.StatusCode, b)
		}
	}
	e.token = tokenOfScope[ScopeAdmin]
	for range 3 {
		e.do("GET", "/api/v1/requests/metrics-1", "", nil)
	}
	e.do("POST", "/api/v1/workflows/other/requests?id=metrics-1&wait=20s", "{}", nil)
	e.token = ""
	resp, err := http.Get(e.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, b)
	}
	text := string(b)
	for _, want := range []string{
		`stepwise_api_requests_total{code="404",route="GET /api/v1/requests/{id}"} 3`,
		`stepwise_api_requests_total{code="200",route="POST /api/v1/workflows/{name}/requests"} 1`,
		`stepwise_api_view_requests 1`,
		`stepwise_kafka_`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(text, "metrics-1") {
		t.Error("a request id appears in /metrics")
	}
}

func TestReadyzBeforeTheView(t *testing.T) {
	s, err := New(Config{Set: mustParse(t, testYAML), Conn: testConn(), Sender: nopSender{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ready(); err == nil {
		t.Fatal("ready before the view read anything")
	}
}
