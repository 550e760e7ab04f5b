//go:build integration

package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	wordcounts "github.com/stepwise-run/stepwise/examples/word-counts"
)

// bridgeTexts are the books of the bridge test: each request counts one,
// so outputs differ between requests and a mixed-up reply shows.
func bridgeTexts() []string {
	words := []string{"tide", "lamp", "keeper", "gull", "rock", "harbour", "storm", "rope"}
	var out []string
	for k := range 4 {
		var b strings.Builder
		fmt.Fprintf(&b, "Title: Book %d\n", k)
		for c := range k + 2 {
			fmt.Fprintf(&b, "CHAPTER %s.\n", strings.Repeat("I", c+1))
			for i := range 5 + 3*c + k {
				fmt.Fprintf(&b, "The %s and the %s's %s.\n", words[(i+k)%len(words)], words[(i*3+c)%len(words)], words[(i+c+k)%len(words)])
			}
		}
		out = append(out, b.String())
	}
	return out
}

// TestBridgeWordCounts runs the word-counts example with segment-word-counts
// served from RabbitMQ by a Python worker of the original manager's AMQP
// protocol, through `stepwise bridge amqp`, and the other steps by the Go
// workers on Kafka. First a few requests on Kafka alone give the reference
// outputs; then 2,000 requests go through the bridge while the bridge is
// killed (SIGKILL) twice and RabbitMQ is restarted once. Every request
// completes exactly once with the all-Kafka output of its book; duplicate
// runs of the bridged step are counted and printed.
func TestBridgeWordCounts(t *testing.T) {
	e := newEnvWithin(t, brokers(), 6*time.Minute)
	rmq := rabbit(t)
	py := python(t)
	const partitions = 4
	s := e.newStack(string(wordcounts.WorkflowsYAML), partitions)
	tl := e.tally()
	s.processor("p1")
	s.waitOwned(partitions, "p1")
	texts := bridgeTexts()
	input := func(k int) any { return map[string]any{"text": texts[k]} }

	// Reference: every step on Kafka.
	goAll := e.spawn("go-workers-all", s.stepwise, nil, append([]string{"workers", "--example", "word-counts"}, s.conn...)...)
	var refs []string
	for k := range texts {
		id := fmt.Sprintf("ref-%d", k)
		refs = append(refs, id)
		e.submitWith(wordcounts.WorkflowName, []string{id}, 1, func(string) any { return input(k) }).wait(t)
	}
	tl.check(t, "all-kafka reference", refs, 60*time.Second)
	want := make([]any, len(texts))
	for k, id := range refs {
		c, _ := tl.output(id)
		if err := json.Unmarshal(c.Output, &want[k]); err != nil {
			t.Fatalf("reference %s: %v", id, err)
		}
	}
	goAll.stop()

	// The bridged run.
	e.spawn("go-workers", s.stepwise, nil, append([]string{"workers", "--example", "word-counts", "--skip-queues", wordcounts.QueueSegment}, s.conn...)...)
	pyWorker := e.spawn("amqp-worker", py, []string{"AMQP_SERVER=" + rmq.url},
		"../examples/word-counts/amqp/segment_word_counts_amqp.py", "--trace")
	replyQueue := string(e.Prefix) + "bridge.replies.b1"
	var bridges []*proc
	startBridge := func() {
		n := len(bridges) + 1
		args := append([]string{"bridge", "amqp", "--amqp-url", rmq.url, "--queues", wordcounts.QueueSegment,
			"--reply-queue", replyQueue, "--log-level", "info"}, s.fileFlags()...)
		bridges = append(bridges, e.spawn(fmt.Sprintf("bridge-%d", n), s.stepwise, nil, append(args, s.conn...)...))
	}
	startBridge()

	reqs := ids("wcb", 2000)
	textOf := func(id string) int {
		var i int
		fmt.Sscanf(id, "wcb-%d", &i)
		return i % len(texts)
	}
	ld := e.submitWith(wordcounts.WorkflowName, reqs, 100, func(id string) any { return input(textOf(id)) })
	time.Sleep(5 * time.Second)
	fmt.Printf("bridge kill 1: SIGKILL, %d requests completed\n", tl.completed())
	bridges[len(bridges)-1].kill()
	startBridge()
	time.Sleep(4 * time.Second)
	fmt.Printf("rabbitmq restart: %d requests completed\n", tl.completed())
	rmq.restart()
	time.Sleep(3 * time.Second)
	fmt.Printf("bridge kill 2: SIGKILL, %d requests completed\n", tl.completed())
	bridges[len(bridges)-1].kill()
	startBridge()
	ld.wait(t)
	c := tl.check(t, "bridge", append(slices.Clone(refs), reqs...), 3*time.Minute)
	fmt.Printf("bridge: %s\n", c)

	wrong := 0
	for _, id := range reqs {
		out, ok := tl.output(id)
		if !ok {
			continue
		}
		var got any
		if err := json.Unmarshal(out.Output, &got); err != nil || !reflect.DeepEqual(got, want[textOf(id)]) {
			if wrong++; wrong <= 3 {
				t.Errorf("%s: output %s, want the all-Kafka output of book %d", id, out.Output, textOf(id))
			}
		}
	}
	if wrong > 0 {
		t.Errorf("%d outputs differ from the all-Kafka run", wrong)
	}

	runs, distinct := countRuns(t, pyWorker.log)
	late := 0
	for _, b := range bridges {
		late += countLines(t, b.log, "outcome=late")
	}
	fmt.Printf("bridge: segment-word-counts ran %d times for %d tasks (%d duplicate runs); %d late replies dropped by the bridges\n",
		runs, distinct, runs-distinct, late)
	if !pyWorker.running() {
		t.Errorf("the AMQP worker exited: %v", pyWorker.err)
	}
}

// countRuns counts the "ran <correlation id>" lines of the AMQP worker.
func countRuns(t *testing.T, log string) (runs, distinct int) {
	t.Helper()
	f, err := os.Open(log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if corr, ok := strings.CutPrefix(sc.Text(), "ran "); ok {
			runs++
			seen[corr] = true
		}
	}
	return runs, len(seen)
}

func countLines(t *testing.T, log, s string) int {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), s)
}
