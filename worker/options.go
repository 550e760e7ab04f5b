package worker

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/stepwise-run/stepwise/kconn"
	"github.com/stepwise-run/stepwise/metrics"
	"github.com/stepwise-run/stepwise/topology"
	"github.com/stepwise-run/stepwise/tracing"
)

// Defaults of the options.
const (
	DefaultConcurrency    = 8
	DefaultDrainTimeout   = 30 * time.Second
	DefaultCommitInterval = time.Second
	// DefaultSessionTimeout is how long a worker that stopped answering
	// keeps its task partitions before the group hands them to another.
	DefaultSessionTimeout = 10 * time.Second
	// DefaultMetadataMaxAge bounds how late a worker learns of partitions
	// added to a task or results topic.
	DefaultMetadataMaxAge = 15 * time.Second
	DefaultMaxResultBytes = 1 << 20 // Kafka's default max.message.bytes
)

type config struct {
	target         kconn.Target
	prefix         topology.Prefix // resolved from target
	group          string
	logger         *slog.Logger
	drainTimeout   time.Duration
	commitInterval time.Duration
	maxResultBytes int
	metrics        *metrics.Worker // nil: metrics off
	id             string          // HeaderWorker of every result; the worker attribute of handler spans
	tracer         trace.Tracer    // nil: tracing off
}

// Option configures a Worker.
type Option func(*config) error

// WithBrokers sets the seed brokers (host:port).
func WithBrokers(brokers ...string) Option {
	return func(c *config) error {
		if len(brokers) == 0 {
			return fmt.Errorf("%w: WithBrokers needs at least one broker", ErrNoBrokers)
		}
		c.target.Brokers = append([]string(nil), brokers...)
		return nil
	}
}

// WithConn takes brokers, TLS, SASL and the topic prefix from the shared
// connection settings of Stepwise programs. WithPrefix, when also given,
// wins over conn.Prefix.
func WithConn(conn kconn.Config) Option {
	return func(c *config) error {
		c.target.Conn = &conn
		return nil
	}
}

// WithKafkaOpts adds franz-go options to every client of the worker (seed
// brokers, TLS, session timeout, fetch sizes...). The options its delivery
// guarantees rest on (consumer group, topics, read_committed, manual
// partitioner, commit marks, rebalance callbacks) are applied after them
// and cannot be overridden.
func WithKafkaOpts(opts ...kgo.Opt) Option {
	return func(c *config) error {
		c.target.KafkaOpts = append(c.target.KafkaOpts, opts...)
		return nil
	}
}

// WithPrefix sets the topic prefix (default "stepwise.").
func WithPrefix(p topology.Prefix) Option {
	return func(c *config) error {
		c.target.Prefix, c.target.PrefixSet = p, true
		return nil
	}
}

// WithGroup sets the stem of the consumer group names: the workers of queue
// q join group "<name>.<q>" (default "<prefix>workers.<q>"). Every worker of
// one queue must use the same name.
func WithGroup(name string) Option {
	return func(c *config) error {
		if name == "" {
			return errors.New("stepwise: WithGroup needs a group name")
		}
		c.group = name
		return nil
	}
}

// WithMetrics records the worker's Prometheus metrics on reg (tasks by
// outcome, handler duration, queue wait, tasks in flight; package metrics
// lists them). Serving reg, at /metrics for one, is the program's part.
// Default: no metrics, at no cost.
func WithMetrics(reg prometheus.Registerer) Option {
	return func(c *config) error {
		if reg == nil {
			return errors.New("stepwise: WithMetrics needs a registerer")
		}
		c.metrics = metrics.NewWorker(reg)
		return nil
	}
}

// WithTracer traces every task the worker runs with tp: a consumer span
// per handler call, child of the task's traceparent header (the
// processor's span of the step attempt), in the handler's context so that
// the handler's own spans join the request's trace; the result carries
// the span's traceparent back (schemas/PROTOCOL.md, "Tracing"). Build tp
// with tracing/otlp or any OpenTelemetry SDK. Default: no spans, at no
// cost.
func WithTracer(tp trace.TracerProvider) Option {
	return func(c *config) error {
		if tp == nil {
			return errors.New("stepwise: WithTracer needs a tracer provider")
		}
		c.tracer = tp.Tracer(tracing.ScopeName)
		return nil
	}
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l != nil {
			c.logger = l
		}
		return nil
	}
}

// WithDrainTimeout bounds how long Run waits, once its context is
// cancelled, for running handlers; it also bounds the wait for them when a
// rebalance revokes their partition (keep it below the group's rebalance
// timeout, 60 s by default). Handlers still running then see their context
// cancelled and their tasks are not committed.
func WithDrainTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("stepwise: drain timeout must be positive, got %v", d)
		}
		c.drainTimeout = d
		return nil
	}
}

// WithCommitInterval sets how often finished tasks' offsets are committed
// (default 1 s, at least 100 ms). Shorter means fewer repeated tasks after
// a crash, and more commit requests.
func WithCommitInterval(d time.Duration) Option {
	return func(c *config) error {
		if d < 100*time.Millisecond {
			return fmt.Errorf("stepwise: commit interval must be at least 100ms, got %v", d)
		}
		c.commitInterval = d
		return nil
	}
}

// WithMaxResultBytes sets the largest result value produced (default 1 MiB,
// Kafka's default max.message.bytes). A larger output is replaced by a
// permanent error saying so, instead of a produce the broker would refuse.
func WithMaxResultBytes(n int) Option {
	return func(c *config) error {
		if n < 256 {
			return fmt.Errorf("stepwise: max result bytes must be at least 256, got %d", n)
		}
		c.maxResultBytes = n
		return nil
	}
}

// WithID sets the id this worker gives itself on every result
// (HeaderWorker), shown in each attempt's history. Default: DefaultID,
// the host name and process id.
func WithID(id string) Option {
	return func(c *config) error {
		if id == "" {
			return errors.New("stepwise: WithID needs a non-empty id")
		}
		c.id = id
		return nil
	}
}

// DefaultID is the worker id used without WithID: "<host>/<pid>", which
// names the process an attempt ran in.
func DefaultID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	return host + "/" + strconv.Itoa(os.Getpid())
}

// HandleOption configures one queue's handling.
type HandleOption func(*queueConfig)

type queueConfig struct {
	concurrency int
	answered    func(*Task)
}

// AfterResult calls fn once the result of a task the handler ran is
// acknowledged by the broker, before its offset may be committed; never
// when no result was produced (the task then runs again). A relay to
// another system uses it to acknowledge its side only once the result is
// safe in Kafka.
func AfterResult(fn func(*Task)) HandleOption {
	return func(q *queueConfig) { q.answered = fn }
}

// Concurrency bounds the handlers of the queue running at once in this
// worker (default 8). Tasks beyond it wait in Kafka, not in memory.
func Concurrency(n int) HandleOption {
	return func(q *queueConfig) { q.concurrency = n }
}

// build validates the configuration once and returns the base franz-go
// options shared by every client of the worker.
func (c *config) build() ([]kgo.Opt, error) {
	opts, prefix, err := c.target.Resolve()
	if err != nil {
		return nil, err
	}
	c.prefix = prefix
	if c.group == "" {
		c.group = string(c.prefix) + "workers"
	}
	return opts, nil
}

func defaults() *config {
	return &config{
		prefix:         topology.DefaultPrefix,
		logger:         slog.New(slog.DiscardHandler),
		drainTimeout:   DefaultDrainTimeout,
		commitInterval: DefaultCommitInterval,
		maxResultBytes: DefaultMaxResultBytes,
		id:             DefaultID(),
	}
}
