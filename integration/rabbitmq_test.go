//go:build integration

package integration

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// rabbitRunDirEnv names the run directory of the RabbitMQ node the tests
// use, started by integration/rabbitmq/up (default: its own default,
// integration/rabbitmq/.run). The tests restart that node, so they need
// its scripts, not only its address.
const rabbitRunDirEnv = "RABBITMQ_RUN_DIR"

// rabbitMQ is the node of integration/rabbitmq/up that the tests use.
type rabbitMQ struct {
	t    *testing.T
	dir  string
	url  string
	port string
}

// rabbit returns the running test node; it fails the test when there is
// none (never skips).
func rabbit(t *testing.T) *rabbitMQ {
	t.Helper()
	dir := os.Getenv(rabbitRunDirEnv)
	if dir == "" {
		dir = filepath.Join("rabbitmq", ".run")
	}
	b, err := os.ReadFile(filepath.Join(dir, "amqp-url"))
	if err != nil {
		t.Fatalf("no RabbitMQ for the bridge tests: %v; start one with integration/rabbitmq/up (and set %s to its --run-dir if not the default)", err, rabbitRunDirEnv)
	}
	r := &rabbitMQ{t: t, dir: dir, url: strings.TrimSpace(string(b))}
	u, err := url.Parse(r.url)
	if err != nil {
		t.Fatalf("%s/amqp-url: %v", dir, err)
	}
	r.port = u.Port()
	c, err := net.DialTimeout("tcp", u.Host, 3*time.Second)
	if err != nil {
		t.Fatalf("RabbitMQ of %s at %s does not answer: %v; start it with integration/rabbitmq/up", dir, u.Host, err)
	}
	c.Close()
	return r
}

// restart stops the node and starts it again on the same data, as an
// operator's restart would: durable queues and persistent messages stay.
func (r *rabbitMQ) restart() {
	r.t.Helper()
	start := time.Now()
	r.script("down", "--keep", "--run-dir", r.dir)
	stopped := time.Now()
	r.script("up", "--resume", "--run-dir", r.dir, "--port", r.port)
	fmt.Printf("rabbitmq restart: stopped in %s, started in %s\n", stopped.Sub(start).Round(time.Millisecond), time.Since(stopped).Round(time.Millisecond))
}

func (r *rabbitMQ) script(name string, args ...string) {
	r.t.Helper()
	out, err := exec.Command(filepath.Join("rabbitmq", name), args...).CombinedOutput()
	if err != nil {
		r.t.Fatalf("rabbitmq/%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// ctl runs rabbitmqctl against the node.
func (r *rabbitMQ) ctl(args ...string) {
	r.t.Helper()
	script := `. rabbitmq/env "$1" "$2"; shift 2; exec /usr/lib/rabbitmq/bin/rabbitmqctl "$@"`
	out, err := exec.Command("bash", append([]string{"-c", script, "ctl", r.dir, r.port}, args...)...).CombinedOutput()
	if err != nil {
		r.t.Fatalf("rabbitmqctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// python returns the interpreter of the Python workers (the SDK's venv,
// with pika for the AMQP worker: make -C sdk/python venv-amqp); it fails
// the test when it is missing.
func python(t *testing.T) string {
	t.Helper()
	py := os.Getenv("STEPWISE_PYTHON")
	if py == "" {
		py = filepath.Join("..", "sdk", "python", ".venv", "bin", "python")
	}
	if out, err := exec.Command(py, "-c", "import pika, stepwise_worker").CombinedOutput(); err != nil {
		t.Fatalf("python for the AMQP worker (%s) cannot import pika and stepwise_worker: %v\n%s\nrun make -C sdk/python venv-amqp", py, err, out)
	}
	abs, err := filepath.Abs(py)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}
