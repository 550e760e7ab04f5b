// Package kfaketest starts the in-process Kafka (kfake) that the unit-level
// runtime tests of every package run against, and the clients they use on
// it. It sits beside the data flow, not in it: tests of processors, client,
// worker, topics and the CLI build their topics and records on top of it;
// the integration suite uses a real Apache Kafka instead.
package kfaketest

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Cluster starts a one-broker kfake cluster, closed when the test ends.
// Its log cleaner is off: kfake compacts past the last stable offset and so
// loses committed records under a transaction that later aborts
// (TestCleanerCompactsOpenTransactions), which made the processors'
// takeover tests lose requests now and then. A test of compaction calls
// the cluster's Compact itself, with no transaction open. opts are applied
// after those defaults and may override them.
func Cluster(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	base := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.BrokerConfigs(map[string]string{"log.cleaner.backoff.ms": "2147483648"}),
	}
	c, err := kfake.NewCluster(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// Client returns a client of c with opts, closed when the test ends.
func Client(t testing.TB, c *kfake.Cluster, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// Admin returns an admin client of c on a fresh client: kadm caches
// metadata for a few seconds, so a test that changes topics and checks the
// result asks a new one.
func Admin(t testing.TB, c *kfake.Cluster) *kadm.Client {
	t.Helper()
	return kadm.NewClient(Client(t, c))
}
