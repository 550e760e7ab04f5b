//go:build integration

package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"

	"github.com/stepwise-run/stepwise/topology"
)

// Environment variables and fixed credentials of the test cluster started by
// integration/kafka/up.
const (
	brokersEnv     = "KAFKA_BROKERS"      // comma-separated seeds; required
	saslBrokersEnv = "KAFKA_SASL_BROKERS" // SASL_PLAINTEXT seeds; default defaultSASLBroker
	defaultSASL    = "127.0.0.1:9096"
	scramUser      = "stepwise"
	scramPassword  = "stepwise-secret"

	// testTimeout bounds each test's Kafka calls, so a wedged broker fails
	// the test with a message instead of hanging until go test's own limit.
	testTimeout = 2 * time.Minute
)

// TestMain fails the whole package when no broker is configured or none
// answers: an integration run that tests nothing must not look green.
func TestMain(m *testing.M) {
	if err := checkCluster(); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: integration tests need a Kafka broker: %v\n", err)
		fmt.Fprintf(os.Stderr, "start one with `make kafka-up` and set %s=127.0.0.1:9092\n", brokersEnv)
		os.Exit(1)
	}
	code := m.Run()
	removeBinaries() // built by the process tests (proc_test.go)
	os.Exit(code)
}

// brokers returns the seeds from KAFKA_BROKERS, or nil when it is unset.
func brokers() []string { return splitSeeds(os.Getenv(brokersEnv)) }

// saslBrokers returns the seeds of the SASL_PLAINTEXT listener.
func saslBrokers() []string {
	if s := splitSeeds(os.Getenv(saslBrokersEnv)); len(s) > 0 {
		return s
	}
	return []string{defaultSASL}
}

func splitSeeds(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// checkCluster asks the seeds for metadata once, with a short deadline.
func checkCluster() error {
	seeds := brokers()
	if len(seeds) == 0 {
		return fmt.Errorf("%s is not set", brokersEnv)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DialTimeout(3*time.Second))
	if err != nil {
		return fmt.Errorf("%s=%q: %w", brokersEnv, os.Getenv(brokersEnv), err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(cl).BrokerMetadata(ctx); err != nil {
		return fmt.Errorf("no broker answers at %s=%q: %w", brokersEnv, os.Getenv(brokersEnv), err)
	}
	return nil
}

// env is one test's view of the shared cluster: its own name prefix, an
// admin client, and clients that are closed when the test ends.
type env struct {
	t      *testing.T
	ctx    context.Context
	Prefix topology.Prefix // "it.<test name>.<random>.", unique per test
	Admin  *kadm.Client
	Seeds  []string // the plaintext seed brokers of the cluster

	topics []string // created by CreateTopic, deleted at cleanup
}

var unsafeTopicChars = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// newEnv returns the environment of test t on the cluster of KAFKA_BROKERS.
// Its context ends with the test or after testTimeout, whichever comes
// first.
func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvAt(t, brokers())
}

// newEnvAt is newEnv on the cluster of seeds (a test's private broker).
func newEnvAt(t *testing.T, seeds []string) *env {
	t.Helper()
	return newEnvWithin(t, seeds, testTimeout)
}

// newEnvWithin is newEnvAt for a test that may take longer than
// testTimeout: its context ends after timeout.
func newEnvWithin(t *testing.T, seeds []string, timeout time.Duration) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	t.Cleanup(cancel)

	var suffix [4]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		t.Fatal(err)
	}
	name := unsafeTopicChars.ReplaceAllString(t.Name(), "_")
	if len(name) > 80 {
		name = name[:80]
	}
	e := &env{
		t:      t,
		ctx:    ctx,
		Seeds:  seeds,
		Prefix: topology.Prefix("it." + name + "." + hex.EncodeToString(suffix[:]) + "."),
	}
	e.Admin = kadm.NewClient(e.Client())
	t.Cleanup(e.deleteTopics) // registered after the admin client, so it runs before it closes
	return e
}

// Context is the test's context for Kafka calls.
func (e *env) Context() context.Context { return e.ctx }

// Name returns a topic, group or transactional id unique to this test.
func (e *env) Name(s string) string { return string(e.Prefix) + s }

// CreateTopic creates the topic e.Name(name) with the given partitions and
// topic configs (nil for none), replicated to every broker of the cluster up
// to 3, and returns its full name. The topic is deleted when the test ends.
func (e *env) CreateTopic(name string, partitions int32, configs map[string]*string) string {
	e.t.Helper()
	topic := e.Name(name)
	md, err := e.Admin.BrokerMetadata(e.ctx)
	if err != nil {
		e.t.Fatalf("metadata: %v", err)
	}
	rf := int16(min(len(md.Brokers), 3))
	resp, err := e.Admin.CreateTopic(e.ctx, partitions, rf, configs, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		e.t.Fatalf("create topic %s: %v", topic, err)
	}
	e.topics = append(e.topics, topic)
	return topic
}

func (e *env) deleteTopics() {
	if len(e.topics) == 0 {
		return
	}
	// The test's context is already cancelled when cleanups run.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resps, err := e.Admin.DeleteTopics(ctx, e.topics...)
	if err == nil {
		err = resps.Error()
	}
	if err != nil {
		e.t.Errorf("delete topics %v: %v", e.topics, err)
	}
}

// Client returns a client of the plaintext listener with the given options
// added, closed when the test ends.
func (e *env) Client(opts ...kgo.Opt) *kgo.Client {
	e.t.Helper()
	return e.newClient(append([]kgo.Opt{kgo.SeedBrokers(e.Seeds...)}, opts...))
}

// SASLClient returns a client of the SASL_PLAINTEXT listener that
// authenticates with mech, closed when the test ends.
func (e *env) SASLClient(mech sasl.Mechanism, opts ...kgo.Opt) *kgo.Client {
	e.t.Helper()
	return e.newClient(append([]kgo.Opt{kgo.SeedBrokers(saslBrokers()...), kgo.SASL(mech)}, opts...))
}

func (e *env) newClient(opts []kgo.Opt) *kgo.Client {
	e.t.Helper()
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		e.t.Fatalf("new client: %v", err)
	}
	e.t.Cleanup(cl.Close)
	return cl
}

// pollUntil polls cl until done reports true for the records seen so far,
// and returns them. It fails the test if the context ends first.
func (e *env) pollUntil(cl *kgo.Client, done func([]*kgo.Record) bool) []*kgo.Record {
	e.t.Helper()
	var got []*kgo.Record
	for !done(got) {
		fs := cl.PollFetches(e.ctx)
		if err := e.ctx.Err(); err != nil {
			e.t.Fatalf("gave up after %d records: %v", len(got), err)
		}
		fs.EachError(func(topic string, p int32, err error) {
			e.t.Fatalf("fetch %s[%d]: %v", topic, p, err)
		})
		got = append(got, fs.Records()...)
	}
	return got
}
