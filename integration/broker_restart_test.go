//go:build integration

package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// privatePortOffset moves the private broker of TestBrokerRestart clear of
// the shared cluster's ports (9092-9098, 9192-9194): 10092 plaintext, 10096
// SASL, 10192 controller.
const privatePortOffset = 1000

// privateBroker starts a one-node cluster of its own for t with
// integration/kafka/up --run-dir, stopped and deleted when t ends. The
// shared cluster of KAFKA_BROKERS may be in use by other tests (and may not
// have been started by this run at all), so a test that stops its broker
// must not touch it.
type privateBroker struct {
	t      *testing.T
	dir    string
	offset int // added to every port
}

func startPrivateBroker(t *testing.T) *privateBroker {
	t.Helper()
	return startPrivateBrokerAt(t, privatePortOffset)
}

// startPrivateBrokerAt starts the private broker with its ports moved by
// offset and further options of integration/kafka/up (--tls-dir DIR).
func startPrivateBrokerAt(t *testing.T, offset int, upArgs ...string) *privateBroker {
	t.Helper()
	b := &privateBroker{t: t, dir: filepath.Join(t.TempDir(), "kafka"), offset: offset}
	b.script("up", append([]string{"--run-dir", b.dir, "--port-offset", fmt.Sprint(offset)}, upArgs...)...)
	t.Cleanup(func() { b.script("down", "--run-dir", b.dir) })
	return b
}

// seeds returns the plaintext listener's address.
func (b *privateBroker) seeds() []string {
	return []string{fmt.Sprintf("127.0.0.1:%d", 9092+b.offset)}
}

// stop stops the broker (SIGTERM: a controlled shutdown) and keeps its data.
func (b *privateBroker) stop() { b.script("down", "--keep", "--run-dir", b.dir) }

// restart starts the stopped broker again on its data.
func (b *privateBroker) restart() {
	b.script("up", "--resume", "--run-dir", b.dir, "--port-offset", fmt.Sprint(b.offset))
}

func (b *privateBroker) script(name string, args ...string) {
	b.t.Helper()
	cmd := exec.Command(filepath.Join("kafka", name), args...)
	if os.Getenv("KAFKA_UP_TIMEOUT") == "" {
		// A private broker starts while the shared one and other tests
		// load the machine: allow it longer than up's default minute.
		cmd.Env = append(os.Environ(), "KAFKA_UP_TIMEOUT=180s")
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.t.Fatalf("integration/kafka/%s %v: %v\n%s", name, args, err, out)
	}
}

// TestBrokerRestart stops the only broker of a cluster for several seconds
// while requests flow, then starts it again on its data. Processors and
// workers are left alone: they must reconnect by themselves and finish
// every request exactly once.
func TestBrokerRestart(t *testing.T) {
	b := startPrivateBroker(t)
	e := newEnvAt(t, b.seeds())
	const partitions = 4
	s := e.newStack(chainYAML, partitions)
	tl := e.tally()
	w := s.echoWorker("w1", 0, "--concurrency", "32")
	procs := []*proc{s.processor("p1"), s.processor("p2")}
	s.waitOwned(partitions, "p1", "p2")

	reqs := ids("brk", 2000)
	ld := e.submit("chain", reqs, 100) // about 20 s of load
	time.Sleep(6 * time.Second)
	before := tl.completed()
	stopped := time.Now()
	b.stop()
	fmt.Printf("broker restart: broker stopped after %d completions\n", before)
	time.Sleep(5 * time.Second)
	restarting := time.Now()
	b.restart()
	up := time.Now()
	fmt.Printf("broker restart: down for %s (restart took %s)\n", up.Sub(stopped).Round(time.Millisecond), up.Sub(restarting).Round(time.Millisecond))

	// The first completion produced after the restart says when the
	// processors and workers were back at work.
	deadline := time.Now().Add(60 * time.Second)
	for {
		var resumed time.Time
		for p := range int32(partitions) {
			if at := tl.firstAfter(p, up); !at.IsZero() && (resumed.IsZero() || at.Before(resumed)) {
				resumed = at
			}
		}
		if !resumed.IsZero() {
			fmt.Printf("broker restart: first completion %s after the broker was back\n", resumed.Sub(up).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("broker restart: no completion within 60s of the broker's restart")
		}
		time.Sleep(50 * time.Millisecond)
	}
	ld.wait(t)
	tl.check(t, "broker restart", reqs, 90*time.Second)
	for _, p := range append(procs, w) {
		if !p.running() {
			t.Errorf("%s exited during the broker's restart: %v", p.name, p.err)
		}
	}
}
