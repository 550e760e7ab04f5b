//go:build integration

package catchup

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The rule on a real Apache Kafka (KAFKA_BROKERS; `make integration` runs
// it): the cases of TestRuleKfake, each on a topic of its own, deleted
// after.
func TestRuleKafka(t *testing.T) {
	env := os.Getenv("KAFKA_BROKERS")
	if env == "" {
		t.Fatal("KAFKA_BROKERS is not set: this test needs a real Kafka (make kafka-up)")
	}
	brokers := strings.Split(env, ",")
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	n := 0
	testRule(t, func(t *testing.T) (string, []string) {
		n++
		topic := "catchup-test-" + time.Now().Format("150405.000") + "-" + string(rune('a'+n))
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := adm.CreateTopic(ctx, 2, 1, nil, topic); err != nil {
			t.Fatalf("create %s: %v", topic, err)
		}
		// A created topic is served only once every broker's metadata
		// has it: wait for it to list with leaders before producing.
		for {
			ts, err := adm.ListTopics(ctx, topic)
			if err == nil && ts.Has(topic) && ts[topic].Err == nil && len(ts[topic].Partitions) == 2 && ts[topic].Partitions.NumReplicas() > 0 {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("topic %s not listed within a minute: %v", topic, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, _ = adm.DeleteTopics(ctx, topic)
		})
		return topic, brokers
	})
}
