package metrics

import "github.com/prometheus/client_golang/prometheus"

// BridgeCounts are the counters of one AMQP bridge (stepwise bridge amqp),
// read when the registry is scraped. Replies counts the replies matched to
// a waiting task; Empty and Garbage are among them.
type BridgeCounts struct {
	Published, Republished, Unconfirmed    int64
	Replies, Empty, Garbage, Unknown, Late int64
	Reconnects                             int64
}

// RegisterBridge exports a bridge's counters on reg:
//
//	stepwise_bridge_tasks_published_total            tasks published and confirmed (republished ones included)
//	stepwise_bridge_tasks_republished_total          published again after a reconnect
//	stepwise_bridge_publishes_unconfirmed_total      nacked or lost before the confirm (published again)
//	stepwise_bridge_replies_total{outcome}           ok, empty (taken as {}), garbage (the attempt failed),
//	                                                 unknown (no task waited; dropped), late (a duplicate run's; dropped)
//	stepwise_bridge_reconnects_total                 connections to RabbitMQ lost
func RegisterBridge(reg prometheus.Registerer, read func() BridgeCounts) {
	reg.MustRegister(&bridgeCollector{read: read})
}

var (
	bridgePublished   = prometheus.NewDesc(namespace+"_bridge_tasks_published_total", "Tasks published to RabbitMQ and confirmed, republished ones included.", nil, nil)
	bridgeRepublished = prometheus.NewDesc(namespace+"_bridge_tasks_republished_total", "Tasks published again after a reconnect.", nil, nil)
	bridgeUnconfirmed = prometheus.NewDesc(namespace+"_bridge_publishes_unconfirmed_total", "Publishes RabbitMQ nacked or lost before confirming; published again.", nil, nil)
	bridgeReplies     = prometheus.NewDesc(namespace+"_bridge_replies_total", "Replies from AMQP workers, by outcome: ok, empty, garbage, unknown, late.", []string{"outcome"}, nil)
	bridgeReconnects  = prometheus.NewDesc(namespace+"_bridge_reconnects_total", "Connections to RabbitMQ lost.", nil, nil)
)

type bridgeCollector struct{ read func() BridgeCounts }

func (c *bridgeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{bridgePublished, bridgeRepublished, bridgeUnconfirmed, bridgeReplies, bridgeReconnects} {
		ch <- d
	}
}

func (c *bridgeCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.read()
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(bridgePublished, n.Published)
	counter(bridgeRepublished, n.Republished)
	counter(bridgeUnconfirmed, n.Unconfirmed)
	counter(bridgeReplies, n.Replies-n.Empty-n.Garbage, "ok")
	counter(bridgeReplies, n.Empty, "empty")
	counter(bridgeReplies, n.Garbage, "garbage")
	counter(bridgeReplies, n.Unknown, "unknown")
	counter(bridgeReplies, n.Late, "late")
	counter(bridgeReconnects, n.Reconnects)
}
