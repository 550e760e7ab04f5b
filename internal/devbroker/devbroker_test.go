package devbroker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/topics"
	"github.com/stepwise-run/stepwise/topology"
)

const plan = `
workflows:
  - name: w
    steps:
      - name: a
      - name: b
        depends: [a]
`

func produceOne(t *testing.T, b *Broker, topic, value string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(value)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func consumeAll(t *testing.T, b *Broker, topic string) []string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []string
	for len(out) == 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("nothing consumed from %s: %v", topic, fs.Errors())
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, string(r.Value)) })
	}
	return out
}

func TestCreateTopicsMakesThePlanTheProcessorChecks(t *testing.T) {
	b, err := Start(WithAddr("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if len(b.Addrs()) != 1 || b.Addrs()[0] == "127.0.0.1:0" {
		t.Fatalf("addrs %v: want the one port picked", b.Addrs())
	}
	set, err := topology.Parse("plan.yaml", []byte(plan))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 2 { // a second run changes nothing
		if err := b.CreateTopics(ctx, set, topology.DefaultPrefix, 2); err != nil {
			t.Fatal(err)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := topics.Check(ctx, kadm.NewClient(cl), topology.DefaultPrefix, set.Topics(topology.DefaultPrefix)); err != nil {
		t.Fatalf("plan check after CreateTopics: %v", err)
	}
}

func TestDataDirSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	b, err := Start(WithAddr("127.0.0.1:0"), WithDataDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	produceOne(t, b, "kept", "hello")
	b.Close()

	b, err = Start(WithAddr("127.0.0.1:0"), WithDataDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got := consumeAll(t, b, "kept"); len(got) != 1 || got[0] != "hello" {
		t.Fatalf("after restart: %q, want [hello]", got)
	}
}

func TestInMemoryForgets(t *testing.T) {
	b, err := Start(WithAddr("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	produceOne(t, b, "gone", "x")
	b.Close()
	b, err = Start(WithAddr("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	topics, err := kadm.NewClient(cl).ListTopics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if topics.Has("gone") {
		t.Error("an in-memory broker kept a topic across restarts")
	}
}

func TestAddresses(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:9092", "[::]:9092", "nohost", "127.0.0.1:99999", "127.0.0.1:x"} {
		if _, err := Start(WithAddr(addr)); !errors.Is(err, ErrAddr) {
			t.Errorf("%s: %v, want ErrAddr", addr, err)
		}
	}
	b, err := Start(WithAddr("localhost:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if host := b.Addrs()[0]; host[:10] != "127.0.0.1:" {
		t.Errorf("localhost listened on %s", host)
	}
	if _, err := Start(WithAddr(b.Addrs()[0])); err == nil {
		t.Error("a second broker on a busy port started")
	}
}
