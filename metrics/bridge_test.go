package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestBridgeCounters(t *testing.T) {
	reg := prometheus.NewRegistry()
	RegisterBridge(reg, func() BridgeCounts {
		return BridgeCounts{Published: 12, Republished: 2, Unconfirmed: 1, Replies: 10, Empty: 3, Garbage: 1, Unknown: 4, Late: 5, Reconnects: 1}
	})
	want := `
# HELP stepwise_bridge_replies_total Replies from AMQP workers, by outcome: ok, empty, garbage, unknown, late.
# TYPE stepwise_bridge_replies_total counter
stepwise_bridge_replies_total{outcome="empty"} 3
stepwise_bridge_replies_total{outcome="garbage"} 1
stepwise_bridge_replies_total{outcome="late"} 5
stepwise_bridge_replies_total{outcome="ok"} 6
stepwise_bridge_replies_total{outcome="unknown"} 4
# HELP stepwise_bridge_tasks_published_total Tasks published to RabbitMQ and confirmed, republished ones included.
# TYPE stepwise_bridge_tasks_published_total counter
stepwise_bridge_tasks_published_total 12
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "stepwise_bridge_replies_total", "stepwise_bridge_tasks_published_total"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(reg); n != 9 {
		t.Errorf("%d series, want 9", n)
	}
}
