package processors

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/stepwise-run/stepwise/kconn"
	"github.com/stepwise-run/stepwise/processors/machine"
	"github.com/stepwise-run/stepwise/topology"
)

// Defaults of Config. The session, heartbeat and transaction timeouts are
// chosen for takeover time (see KAFKA-NOTES.md): a dead replica's
// partitions wait for the session timeout, then for its open transaction to
// time out before their state can be restored.
const (
	DefaultSessionTimeout   = 6 * time.Second
	DefaultHeartbeat        = time.Second
	DefaultRebalanceTimeout = 10 * time.Second
	DefaultTxnTimeout       = 5 * time.Second
	DefaultFetchMaxWait     = 10 * time.Millisecond
	DefaultMaxBatch         = 1000
	// DefaultMaxPayload is the largest record the processor produces, key,
	// value and headers included. It stays under the producer's default
	// batch limit (1,000,012 bytes) and Kafka's default max.message.bytes.
	DefaultMaxPayload = 1_000_000
)

// ErrConfig is wrapped by every error New returns for bad settings.
var ErrConfig = errors.New("stepwise: invalid processor settings")

// Config of one processor replica. Conn is required; zero values
// elsewhere take the defaults above.
type Config struct {
	Conn kconn.Config // brokers, TLS, SASL, topic prefix
	// Set holds workflows published to the definitions topic when the
	// processor starts (`stepwise run -f`); a workflow whose content
	// equals its newest version is left as it is. Optional: the processor
	// runs whatever the definitions topic holds, applied or not with
	// `stepwise apply`, and follows it while it runs.
	Set *topology.Set

	// ReplicaID names this replica's transactional id. It must be unique
	// among the running replicas and stable across restarts of one
	// replica (a pod name), so that a restarted replica fences the
	// transactions of its previous incarnation at once. Default: hostname.
	ReplicaID string

	SessionTimeout   time.Duration
	Heartbeat        time.Duration
	RebalanceTimeout time.Duration // also bounds a restore in the assignment callback
	// TxnTimeout is how long the broker lets a transaction stay open. It
	// must exceed the slowest batch (CommitInterval included); it bounds
	// how long a survivor waits for a dead replica's open transaction.
	TxnTimeout time.Duration
	// CommitInterval lets one transaction span several polls, trading
	// latency for throughput. 0: one transaction per poll.
	CommitInterval time.Duration
	FetchMaxWait   time.Duration
	MaxBatch       int // records per poll
	MaxPayload     int // largest record produced, bytes

	// ExplicitTxnPartitions registers each transaction's partitions with
	// AddPartitionsToTxn instead of letting produces do it (KIP-890 part 2,
	// Kafka 4's default), and retries a transaction that finds the
	// previous one still completing after 1 ms instead of 20 ms.
	// Experimental, off by default: against Apache Kafka 4.4 it tripled
	// throughput in the benchmark, but in about half the runs of the
	// broker-restart fault test it left requests stranded after the
	// restart. docs/operations.md, "Transactions on Kafka 4".
	ExplicitTxnPartitions bool

	// Machine options beyond the payload limit (retention...).
	MachineOptions []machine.Option

	// Metrics, when set, receives the processor's Prometheus metrics
	// and its Kafka clients' (package metrics lists them). Nil: none, at
	// no cost.
	Metrics prometheus.Registerer

	// Tracer, when set, receives the processor's spans: one per request
	// and one per step attempt, emitted once the transition that ends
	// them commits (package tracing; build it with tracing/otlp, whose
	// id generator the spans need). Nil: no spans and no tracing work;
	// a caller's traceparent on a start is still passed on to the tasks.
	Tracer trace.TracerProvider

	Logger *slog.Logger
	Now    func() time.Time // clock; tests only

	// ExtraOpts are appended to every Kafka client the processor builds
	// (tests use it for a killable dialer).
	ExtraOpts []kgo.Opt

	measureCommits bool // measure each commit's phases (commitsplit.go) whatever the log level; benchmarks
}

// GroupID returns the consumer group of the processors of an installation.
func GroupID(p topology.Prefix) string { return string(p) + "processors" }

// TransactionalID returns the transactional id of one processor replica.
func TransactionalID(p topology.Prefix, replica string) string {
	return string(p) + "processor-" + replica
}

// withDefaults returns cfg with zero fields defaulted, or why it is unusable.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Set == nil {
		cfg.Set = &topology.Set{Workflows: map[string]*topology.Workflow{}}
	}
	if cfg.Conn.Prefix == "" {
		cfg.Conn.Prefix = topology.DefaultPrefix
	}
	if cfg.ReplicaID == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			return cfg, fmt.Errorf("%w: no replica id and no hostname; set --replica-id", ErrConfig)
		}
		cfg.ReplicaID = h
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.SessionTimeout, DefaultSessionTimeout)
	def(&cfg.Heartbeat, DefaultHeartbeat)
	def(&cfg.RebalanceTimeout, DefaultRebalanceTimeout)
	def(&cfg.TxnTimeout, DefaultTxnTimeout)
	def(&cfg.FetchMaxWait, DefaultFetchMaxWait)
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.MaxPayload <= 0 {
		cfg.MaxPayload = DefaultMaxPayload
	}
	if cfg.MaxPayload < 4096 {
		return cfg, fmt.Errorf("%w: max payload %d is below 4096 bytes", ErrConfig, cfg.MaxPayload)
	}
	if cfg.Heartbeat >= cfg.SessionTimeout {
		return cfg, fmt.Errorf("%w: heartbeat %s must be below the session timeout %s", ErrConfig, cfg.Heartbeat, cfg.SessionTimeout)
	}
	if cfg.CommitInterval < 0 || cfg.CommitInterval >= cfg.TxnTimeout/2 {
		return cfg, fmt.Errorf("%w: commit interval %s must be below half the transaction timeout %s", ErrConfig, cfg.CommitInterval, cfg.TxnTimeout)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return cfg, nil
}

// payloadLimit is the machine's limit on inputs and outputs: the record
// limit less room for the envelope (state record fields, headers).
func (cfg Config) payloadLimit() int { return cfg.MaxPayload - cfg.MaxPayload/16 }
