package bridge

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/stepwise-run/stepwise/topology"
	"github.com/stepwise-run/stepwise/worker"
)

// Defaults of the options.
const (
	DefaultConcurrency = 256 // tasks in flight per queue per replica
	DefaultBackoffMin  = 100 * time.Millisecond
	DefaultBackoffMax  = 10 * time.Second
	DefaultGrace       = 30 * time.Second // how long a reply no task waits for is kept
)

type config struct {
	url         string
	queues      []string
	replyQueue  string
	prefix      topology.Prefix
	concurrency int
	backoff     backoff
	statsEvery  time.Duration
	grace       time.Duration
	logger      *slog.Logger
	workerOpts  []worker.Option
	routes      map[string]Route // by Stepwise queue; absent: the queue's own name in the URL's vhost
}

// Route is where the tasks of one Stepwise queue go in RabbitMQ.
type Route struct {
	VHost string // "": the vhost of the AMQP URL
	Queue string // the AMQP queue
}

func defaults() config {
	return config{
		prefix:      topology.DefaultPrefix,
		concurrency: DefaultConcurrency,
		backoff:     backoff{DefaultBackoffMin, DefaultBackoffMax},
		statsEvery:  time.Minute,
		grace:       DefaultGrace,
		logger:      slog.Default(),
	}
}

// Option configures a Bridge.
type Option func(*config) error

// WithAMQPURL sets the RabbitMQ to connect to
// (amqp://user:password@host:port/vhost). Required.
func WithAMQPURL(url string) Option {
	return func(c *config) error { c.url = url; return nil }
}

// WithQueues sets the queues to bridge: for each, tasks.<queue> is relayed
// to the AMQP queue of the same name. Required.
func WithQueues(queues ...string) Option {
	return func(c *config) error {
		for _, q := range queues {
			if q == "" {
				return errors.New("stepwise bridge: empty queue name")
			}
		}
		c.queues = append(c.queues, queues...)
		return nil
	}
}

// WithRoute sends the tasks of queue to the AMQP queue amqpQueue of
// vhost, instead of the queue of the same name in the URL's vhost. A
// workflow served under vhosts (vhosts: [/x]) has its queues named
// "x.<queue>" in Stepwise, while the original manager's workers consume
// "<queue>" in the vhost "/x": route each such queue there.
func WithRoute(queue, vhost, amqpQueue string) Option {
	return func(c *config) error {
		if amqpQueue == "" {
			return fmt.Errorf("stepwise bridge: empty AMQP queue for %q", queue)
		}
		if c.routes == nil {
			c.routes = map[string]Route{}
		}
		c.routes[queue] = Route{VHost: vhost, Queue: amqpQueue}
		return nil
	}
}

// WithReplyQueue names this replica's reply queue. Default
// "<prefix>bridge.replies.<host>-<pid>"; give each replica its own, stable
// across restarts, to keep the replies that arrive while it restarts.
func WithReplyQueue(name string) Option {
	return func(c *config) error { c.replyQueue = name; return nil }
}

// WithPrefix sets the topic prefix (it must match the workers' options);
// it also prefixes the default reply queue.
func WithPrefix(p topology.Prefix) Option {
	return func(c *config) error { c.prefix = p; return nil }
}

// WithConcurrency bounds the tasks of each queue this replica keeps in
// flight on RabbitMQ (default DefaultConcurrency).
func WithConcurrency(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return errors.New("stepwise bridge: concurrency must be at least 1")
		}
		c.concurrency = n
		return nil
	}
}

// WithBackoff sets the reconnect and republish backoff: from min doubling
// up to max, with jitter.
func WithBackoff(min, max time.Duration) Option {
	return func(c *config) error {
		if min <= 0 || max < min {
			return fmt.Errorf("stepwise bridge: backoff %s..%s: want 0 < min <= max", min, max)
		}
		c.backoff = backoff{min, max}
		return nil
	}
}

// WithUnknownGrace sets how long a reply that no task here waits for is
// kept (unacknowledged) before it is dropped as unknown (default
// DefaultGrace). It covers a restart: replies to the previous
// incarnation's tasks arrive before Kafka delivers those tasks again.
func WithUnknownGrace(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return errors.New("stepwise bridge: unknown-reply grace must be positive")
		}
		c.grace = d
		return nil
	}
}

// WithStatsInterval sets how often the counters are logged (default 1 min).
func WithStatsInterval(d time.Duration) Option {
	return func(c *config) error { c.statsEvery = d; return nil }
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error { c.logger = l; return nil }
}

// WithWorkerOptions sets how the Kafka side connects (brokers, TLS, SASL,
// prefix, group): the options of the Go worker SDK.
func WithWorkerOptions(opts ...worker.Option) Option {
	return func(c *config) error { c.workerOpts = append(c.workerOpts, opts...); return nil }
}
