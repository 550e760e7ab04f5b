//go:build integration

package bridge

// BenchmarkLinear3 measures what bridging one step over AMQP costs: the
// bench's linear3 workflow (three echo steps a -> b -> c) with every step
// on Kafka, and with step b served from RabbitMQ through the bridge, in
// the same run, against a real Kafka and a real RabbitMQ:
//
//	integration/kafka/up && integration/rabbitmq/up
//	KAFKA_BROKERS=127.0.0.1:9092 go test -tags integration ./internal/bridge/ \
//	    -run '^$' -bench Linear3 -benchtime 5000x
//
// Everything but the brokers (processor, Go workers, bridge, and a Go echo
// worker of the original AMQP protocol) runs in the benchmark's process.
// Each op is one request, 256 in flight; it reports requests/s and the
// latency percentiles of a request. Figures: docs/benchmarks.md.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/kconn"
	"github.com/stepwise-run/stepwise/processors"
	"github.com/stepwise-run/stepwise/topics"
	"github.com/stepwise-run/stepwise/topology"
	"github.com/stepwise-run/stepwise/worker"
)

const benchInFlight = 256

func BenchmarkLinear3(b *testing.B) {
	seeds := strings.Split(os.Getenv("KAFKA_BROKERS"), ",")
	if seeds[0] == "" {
		b.Fatal("KAFKA_BROKERS is not set: start a broker with integration/kafka/up")
	}
	amqpURL := benchAMQPURL(b)
	for _, bridged := range []bool{false, true} {
		name := "kafka"
		if bridged {
			name = "amqp-b"
		}
		b.Run(name, func(b *testing.B) { runLinear3(b, seeds, amqpURL, bridged) })
	}
}

func benchAMQPURL(b *testing.B) string {
	dir := os.Getenv("RABBITMQ_RUN_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "integration", "rabbitmq", ".run")
	}
	u, err := os.ReadFile(filepath.Join(dir, "amqp-url"))
	if err != nil {
		b.Fatalf("no RabbitMQ: %v; start one with integration/rabbitmq/up", err)
	}
	return strings.TrimSpace(string(u))
}

func runLinear3(b *testing.B, seeds []string, amqpURL string, bridged bool) {
	transport := ""
	if bridged {
		transport = "\n        queue: {name: b, transport: amqp}"
	}
	yaml := fmt.Sprintf("workflows:\n  - name: linear3\n    steps:\n      - name: a\n      - name: b\n        depends: [a]%s\n      - name: c\n        depends: [b]\n", transport)
	set, err := topology.Parse("linear3.yaml", []byte(yaml))
	if err != nil {
		b.Fatal(err)
	}
	prefix := topology.Prefix(fmt.Sprintf("bench.bridge.%d.", time.Now().UnixNano()))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	specs := set.Topics(prefix)
	if err := topics.Ensure(ctx, adm, specs, 4, 1); err != nil {
		b.Fatal(err)
	}
	defer func() {
		var names []string
		for _, s := range specs {
			names = append(names, s.Name)
		}
		_, _ = adm.DeleteTopics(context.Background(), names...)
	}()
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	conn := kconn.Default()
	conn.Brokers, conn.Prefix = seeds, prefix

	var wg sync.WaitGroup
	run := func(what string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil && ctx.Err() == nil {
				b.Errorf("%s: %v", what, err)
			}
		}()
	}
	defer wg.Wait()
	defer cancel()

	p, err := processors.New(processors.Config{Conn: conn, Set: set, ReplicaID: "bench", Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	run("processor", func() error { return p.Run(ctx) })
	echo := func(_ context.Context, t *worker.Task) (json.RawMessage, error) { return t.Input, nil }
	w, err := worker.New(worker.WithConn(conn), worker.WithLogger(quiet))
	if err != nil {
		b.Fatal(err)
	}
	for _, q := range set.QueuesOver(topology.TransportKafka) {
		w.Handle(q, echo, worker.Concurrency(benchInFlight))
	}
	run("workers", func() error { return w.Run(ctx) })
	if bridged {
		queue := set.QueuesOver(topology.TransportAMQP)[0]
		br, err := New(WithAMQPURL(amqpURL), WithQueues(queue), WithPrefix(prefix), WithLogger(quiet),
			WithWorkerOptions(worker.WithConn(conn), worker.WithLogger(quiet)))
		if err != nil {
			b.Fatal(err)
		}
		run("bridge", func() error { return br.Run(ctx) })
		run("amqp echo worker", func() error { return amqpEcho(ctx, amqpURL, queue) })
	}

	d := newDriver(b, seeds, prefix)
	defer d.close()
	// Warm up: the groups form and every path is taken once.
	d.run(ctx, b, 50)
	b.ResetTimer()
	lat := d.run(ctx, b, b.N)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "requests/s")
	slices.Sort(lat)
	for _, q := range []struct {
		name string
		at   float64
	}{{"p50-ms", 0.5}, {"p99-ms", 0.99}} {
		b.ReportMetric(float64(lat[int(q.at*float64(len(lat)-1))].Microseconds())/1000, q.name)
	}
}

// amqpEcho is a worker of the original AMQP protocol that answers each
// task with its own body.
func amqpEcho(ctx context.Context, url, queue string) error {
	conn, err := amqp.Dial(url)
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		return err
	}
	defer ch.QueueDelete(queue, false, false, false)
	if err := ch.Qos(benchInFlight, 0, false); err != nil {
		return err
	}
	ds, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case d, ok := <-ds:
			if !ok {
				return fmt.Errorf("amqp echo: deliveries closed")
			}
			err := ch.PublishWithContext(ctx, "", d.ReplyTo, false, false, amqp.Publishing{
				CorrelationId: d.CorrelationId, ContentType: "application/json", DeliveryMode: amqp.Persistent, Body: d.Body})
			if err != nil {
				return err
			}
			if err := d.Ack(false); err != nil {
				return err
			}
		}
	}
}

// driver starts requests, benchInFlight at a time, and times each until
// its completion.
type driver struct {
	prefix topology.Prefix
	prod   *kgo.Client
	cons   *kgo.Client
	mu     sync.Mutex
	done   map[string]chan struct{}
	seq    int
}

func newDriver(b *testing.B, seeds []string, prefix topology.Prefix) *driver {
	prod, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ProducerLinger(0))
	if err != nil {
		b.Fatal(err)
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(prefix.Completions()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(10*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	d := &driver{prefix: prefix, prod: prod, cons: cons, done: map[string]chan struct{}{}}
	go func() {
		for {
			fs := cons.PollFetches(context.Background())
			if fs.IsClientClosed() {
				return
			}
			fs.EachRecord(func(r *kgo.Record) {
				d.mu.Lock()
				if ch, ok := d.done[string(r.Key)]; ok {
					close(ch)
					delete(d.done, string(r.Key))
				}
				d.mu.Unlock()
			})
		}
	}()
	return d
}

func (d *driver) close() { d.prod.Close(); d.cons.Close() }

// run completes n requests and returns their latencies.
func (d *driver) run(ctx context.Context, b *testing.B, n int) []time.Duration {
	lat := make([]time.Duration, n)
	slots := make(chan struct{}, benchInFlight)
	var wg sync.WaitGroup
	for i := range n {
		slots <- struct{}{}
		d.mu.Lock()
		d.seq++
		id := fmt.Sprintf("r-%d", d.seq)
		ch := make(chan struct{})
		d.done[id] = ch
		d.mu.Unlock()
		v, _ := json.Marshal(map[string]any{"type": "start", "workflow": "linear3", "id": id, "input": map[string]int{"n": i}})
		start := time.Now()
		d.prod.Produce(ctx, &kgo.Record{Topic: d.prefix.Requests(), Key: []byte(id), Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				b.Errorf("start %s: %v", id, err)
			}
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			select {
			case <-ch:
				lat[i] = time.Since(start)
			case <-time.After(2 * time.Minute):
				b.Errorf("request %s did not complete within 2 minutes", id)
			}
		}()
	}
	wg.Wait()
	return lat
}
