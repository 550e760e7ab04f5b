//go:build integration

package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	wordcounts "github.com/stepwise-run/stepwise/examples/word-counts"
	"github.com/stepwise-run/stepwise/internal/bridge"
	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/worker"
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
// protocol, through two replicas of `stepwise bridge amqp`, and the other
// steps by the Go workers on Kafka. First a few requests on Kafka alone
// give the reference outputs; then 2,000 requests go through the bridge
// while a bridge replica is killed (SIGKILL) twice and RabbitMQ is
// restarted once. Every request
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
	// Two bridge replicas share the queue's group; each keeps its reply
	// queue across its restarts.
	var bridges []*proc
	replica := map[string]*proc{}
	startBridge := func(name string) {
		args := append([]string{"bridge", "amqp", "--amqp-url", rmq.url, "--queues", wordcounts.QueueSegment,
			"--reply-queue", string(e.Prefix) + "bridge.replies." + name, "--log-level", "info"}, s.fileFlags()...)
		p := e.spawn(fmt.Sprintf("bridge-%s-%d", name, len(bridges)+1), s.stepwise, nil, append(args, s.conn...)...)
		bridges = append(bridges, p)
		replica[name] = p
	}
	startBridge("b1")
	startBridge("b2")

	reqs := ids("wcb", 2000)
	textOf := func(id string) int {
		var i int
		fmt.Sscanf(id, "wcb-%d", &i)
		return i % len(texts)
	}
	ld := e.submitWith(wordcounts.WorkflowName, reqs, 100, func(id string) any { return input(textOf(id)) })
	// The faults come while requests flow: after a given number completed.
	reached := func(n int) {
		deadline := time.Now().Add(3 * time.Minute)
		for tl.completed() < n && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}
	reached(len(refs) + 200)
	fmt.Printf("bridge kill 1: SIGKILL b1, %d requests completed\n", tl.completed())
	replica["b1"].kill()
	startBridge("b1")
	reached(len(refs) + 600)
	fmt.Printf("rabbitmq restart: %d requests completed\n", tl.completed())
	rmq.restart()
	reached(len(refs) + 1000)
	fmt.Printf("bridge kill 2: SIGKILL b2, %d requests completed\n", tl.completed())
	replica["b2"].kill()
	startBridge("b2")
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
	republished := 0
	for _, b := range bridges {
		republished += countLines(t, b.log, "lost RabbitMQ; reconnecting")
	}
	fmt.Printf("bridge: segment-word-counts ran %d times for %d tasks (%d duplicate runs); %d late replies dropped by the bridges; %d bridge reconnects\n",
		runs, distinct, runs-distinct, late, republished)
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

// TestBridgeGarbageReplies: an AMQP worker answers with a body that is not
// JSON, one that is JSON but not an object, an empty body, and replies
// under a correlation id nobody waits for or none at all. Each has its
// documented outcome: the first two fail the attempt with the reason (and
// the request, once its attempts are spent), an empty body is the output
// {}, unknown replies are counted and dropped and the step's timeout runs
// it again. Nothing hangs.
func TestBridgeGarbageReplies(t *testing.T) {
	e := newEnv(t)
	rmq := rabbit(t)
	queue := "garbage-" + strings.ReplaceAll(strings.TrimSuffix(string(e.Prefix), "."), ".", "-")[len("it-"):]
	queue = queue[:min(len(queue), 90)]
	yaml := fmt.Sprintf(`
workflows:
  - name: garbage
    steps:
      - name: g
        queue: {name: %s, transport: amqp}
        retry: {maxAttempts: 2, initial: 100ms}
        timeout: 4s
`, queue)
	s := e.newStack(yaml, 2)
	tl := e.tally()
	s.processor("p1")
	s.waitOwned(2, "p1")

	// The worker: what it answers depends on the request's "mode" and on
	// how often it saw the task.
	seen := map[string]int{}
	serveAMQP(t, rmq.url, "", queue, func(d amqp.Delivery, reply func(corr, body string)) {
		var in struct{ Mode string }
		_ = json.Unmarshal(d.Body, &in)
		seen[d.CorrelationId]++
		switch in.Mode {
		case "notjson":
			reply(d.CorrelationId, "Traceback (most recent call last):")
		case "array":
			reply(d.CorrelationId, "[1, 2]")
		case "empty":
			reply(d.CorrelationId, "")
		case "unknown":
			if seen[d.CorrelationId] == 1 {
				reply("nobody:g", `{"lost": true}`)
				reply("", `{"lost": true}`)
			} else {
				reply(d.CorrelationId, `{"fine": true}`)
			}
		}
	})

	b, err := bridge.New(bridge.WithAMQPURL(rmq.url), bridge.WithQueues(queue),
		bridge.WithReplyQueue(string(e.Prefix)+"bridge.replies"), bridge.WithUnknownGrace(time.Second),
		bridge.WithWorkerOptions(worker.WithBrokers(e.Seeds...), worker.WithPrefix(e.Prefix)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("bridge: %v", err)
		}
	}()

	modes := []string{"notjson", "array", "empty", "unknown"}
	for _, m := range modes {
		e.submitWith("garbage", []string{m}, 1, func(string) any { return map[string]string{"mode": m} }).wait(t)
	}
	if !tl.wait(modes, 60*time.Second) {
		t.Fatalf("not every request finished within 60s: %d of %d", tl.completed(), len(modes))
	}
	want := map[string]struct {
		status schemas.CompletionStatus
		detail string // in the error message, or the output
	}{
		"notjson": {schemas.Failed, "the body is not JSON"},
		"array":   {schemas.Failed, "the body is a JSON array, not an object"},
		"empty":   {schemas.Succeeded, `{}`},
		"unknown": {schemas.Succeeded, `{"fine":true}`},
	}
	for _, m := range modes {
		c, _ := tl.output(m)
		w := want[m]
		got := string(c.Output)
		if c.Error != nil {
			got = fmt.Sprintf("attempt %d: %s", c.Error.Attempt, c.Error.Message)
		}
		fmt.Printf("garbage reply %-8s -> %s: %s\n", m, c.Status, got)
		if c.Status != w.status || !strings.Contains(got, w.detail) {
			t.Errorf("%s: %s %s, want %s with %q", m, c.Status, got, w.status, w.detail)
		}
		if c.Error != nil && c.Error.Attempt != 2 {
			t.Errorf("%s: failed at attempt %d, want 2 (each attempt failed with the reason)", m, c.Error.Attempt)
		}
	}
	// The unknown replies are counted once their grace has passed.
	deadline := time.Now().Add(10 * time.Second)
	for b.Stats().Unknown.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	st := b.Stats().Snapshot()
	fmt.Printf("garbage replies: bridge counters %v\n", st)
	if st["garbage"] != 4 || st["empty"] != 1 || st["unknown"] != 2 {
		t.Errorf("counters %v: want garbage 4 (2 requests x 2 attempts), empty 1, unknown 2", st)
	}
}

// serveAMQP runs a worker of the original AMQP protocol on queue (in
// vhost, "" for the URL's) until the test ends: answer is called for each
// task, one at a time, and may reply any number of times; the task is
// acknowledged after it returns. The queue is deleted at the end.
func serveAMQP(t *testing.T, url, vhost, queue string, answer func(d amqp.Delivery, reply func(corr, body string))) {
	t.Helper()
	conn, err := amqp.DialConfig(url, amqp.Config{Vhost: vhost})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for d := range deliveries {
			answer(d, func(corr, body string) {
				_ = ch.Publish("", d.ReplyTo, false, false, amqp.Publishing{
					CorrelationId: corr, ContentType: "application/json", DeliveryMode: amqp.Persistent, Body: []byte(body)})
			})
			_ = d.Ack(false)
		}
	}()
	t.Cleanup(func() {
		_, _ = ch.QueueDelete(queue, false, false, false)
		conn.Close()
		<-done
	})
}

// TestBridgeVHost: a workflow of the original manager served under a
// vhost keeps its workers: `stepwise bridge amqp` publishes the tasks of
// its queue "<vhost>.<queue>" to "<queue>" in that RabbitMQ vhost.
func TestBridgeVHost(t *testing.T) {
	e := newEnv(t)
	rmq := rabbit(t)
	// A vhost of this test's own: "vh" and the random part of its prefix.
	ns := "vh" + string(e.Prefix)[len(e.Prefix)-9:len(e.Prefix)-1]
	vhost := "/" + ns
	rmq.ctl("add_vhost", vhost)
	t.Cleanup(func() { rmq.ctl("delete_vhost", vhost) })
	rmq.ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
	s := e.newStack(fmt.Sprintf(`
workflows:
  - name: tenant
    vhosts: [%s]
    steps:
      - name: greet
        queue: {name: greet, transport: amqp}
        timeout: 20s
`, vhost), 2)
	tl := e.tally()
	s.processor("p1")
	serveAMQP(t, rmq.url, vhost, "greet", func(d amqp.Delivery, reply func(corr, body string)) {
		reply(d.CorrelationId, `{"greeting": "hello from `+vhost+`"}`)
	})
	e.spawn("bridge", s.stepwise, nil, append(append([]string{"bridge", "amqp", "--amqp-url", rmq.url}, s.fileFlags()...), s.conn...)...)
	s.waitOwned(2, "p1")
	id := "vh-1"
	e.submitWith(ns+"/tenant", []string{id}, 1, func(string) any { return map[string]any{} }).wait(t)
	tl.check(t, "vhost", []string{id}, 60*time.Second)
	c, _ := tl.output(id)
	fmt.Printf("vhost: %s -> %s\n", vhost, c.Output)
	if !strings.Contains(string(c.Output), "hello from "+vhost) {
		t.Errorf("output %s, want the reply of the worker in vhost %s", c.Output, vhost)
	}
}
