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
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, _ = adm.DeleteTopics(ctx, topic)
		})
		return topic, brokers
	})
}
