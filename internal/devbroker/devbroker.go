package devbroker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/internal/logkey"
	"github.com/stepwise-run/stepwise/kconn"
	"github.com/stepwise-run/stepwise/topics"
	"github.com/stepwise-run/stepwise/topology"
)

// cleanerOff is the default cleaner period: long enough never to come.
// kfake's cleaner is unsafe for the processor in two ways. It compacts past
// the last stable offset, so a record of a transaction still open
// supersedes the committed record of the same key, and when that
// transaction aborts the key is gone (TestCleanerCompactsOpenTransactions
// in internal/kfaketest): a restore then misses requests. And on disk it
// rewrites a partition's files in place, so a kill during the rewrite
// loses the partition. Without compaction restores read every version of
// the state, which a development session's history keeps small.
const cleanerOff = 1 << 31 * time.Millisecond

// Defaults of the options.
const (
	DefaultAddr       = "127.0.0.1:9092"
	DefaultPartitions = 3
)

// ErrAddr is wrapped by the error of an unusable listen address.
var ErrAddr = errors.New("stepwise: invalid dev broker address")

// Broker is a running embedded broker. Close it once.
type Broker struct {
	cluster *kfake.Cluster
	addrs   []string
	dataDir string
}

type config struct {
	addr    string
	dataDir string
	cleaner time.Duration
	logger  *slog.Logger
}

// Option configures Start.
type Option func(*config) error

// WithAddr sets the host:port to listen on (default 127.0.0.1:9092). Port 0
// picks a free port (see Addrs). The broker advertises exactly this address
// to clients, so it must be one they can reach: not 0.0.0.0.
func WithAddr(addr string) Option {
	return func(c *config) error {
		c.addr = addr
		return nil
	}
}

// WithDataDir keeps the broker's data in dir (created if needed) and
// reloads it on the next start; "" keeps everything in memory (the
// default).
func WithDataDir(dir string) Option {
	return func(c *config) error {
		c.dataDir = dir
		return nil
	}
}

// WithCleanerBackoff sets how often the log cleaner compacts compacted
// topics (default: never, see cleanerOff).
func WithCleanerBackoff(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("stepwise: cleaner backoff must be positive, got %v", d)
		}
		c.cleaner = d
		return nil
	}
}

// WithLogger receives the broker's warnings and errors (default: none).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		c.logger = l
		return nil
	}
}

// Start starts the broker, reloading the data directory's content when
// there is one.
func Start(opts ...Option) (*Broker, error) {
	c := config{addr: DefaultAddr}
	for _, o := range opts {
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	if c.cleaner == 0 {
		c.cleaner = cleanerOff
	}
	host, port, err := splitAddr(c.addr)
	if err != nil {
		return nil, err
	}
	kopts := []kfake.Opt{
		kfake.Ports(port),
		kfake.BrokerConfigs(map[string]string{
			"log.cleaner.backoff.ms": strconv.FormatInt(c.cleaner.Milliseconds(), 10),
		}),
		// For topics clients create without a partition count.
		kfake.DefaultNumPartitions(DefaultPartitions),
	}
	if host != "127.0.0.1" {
		// kfake listens on 127.0.0.1 unless told otherwise; listen on the
		// address asked for, which is also what it advertises.
		kopts = append(kopts, kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, net.JoinHostPort(host, strconv.Itoa(port)))
		}))
	}
	if c.logger != nil {
		kopts = append(kopts, kfake.WithLogger(slogLogger{c.logger}))
	}
	if c.dataDir != "" {
		if err := os.MkdirAll(c.dataDir, 0o755); err != nil {
			return nil, fmt.Errorf("stepwise: dev broker data directory: %w", err)
		}
		if err := recoverData(c.dataDir, c.logger); err != nil {
			return nil, err
		}
		kopts = append(kopts, kfake.DataDir(c.dataDir))
	}
	cluster, err := kfake.NewCluster(kopts...)
	if err != nil {
		if c.dataDir != "" {
			return nil, fmt.Errorf("stepwise: start dev broker on %s with data in %s (delete the directory, or use --in-memory, if it holds data of an incompatible version): %w", c.addr, c.dataDir, err)
		}
		return nil, fmt.Errorf("stepwise: start dev broker on %s: %w", c.addr, err)
	}
	return &Broker{cluster: cluster, addrs: cluster.ListenAddrs(), dataDir: c.dataDir}, nil
}

// recoverData gives every transaction the crash of a previous run left
// without a marker on some partition the marker it lacks (recovery.go),
// and logs each one.
func recoverData(dir string, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	repairs, err := recoverDataDir(dir)
	for _, r := range repairs {
		log.Warn("transaction left unfinished by a crash: marker written", "component", "broker", "topic", r.Topic,
			"partition", r.Partition, "producer_id", r.ProducerID, "epoch", r.Epoch, "commit", r.Commit, "offset", r.Offset)
	}
	if errors.Is(err, errUnknownFormat) {
		log.Warn("data directory format unknown to this build: transactions torn by a crash are not repaired", "component", "broker", "dir", dir, logkey.Error, err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("stepwise: dev broker data in %s: repair after a crash: %w (delete the directory, or use --in-memory, to start afresh)", dir, err)
	}
	return nil
}

// splitAddr checks a listen address and returns its parts.
func splitAddr(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%w %q: %v (want host:port, e.g. %s)", ErrAddr, addr, err, DefaultAddr)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("%w %q: port %q is not a number from 0 to 65535", ErrAddr, addr, p)
	}
	switch {
	case host == "" || host == "localhost":
		host = "127.0.0.1"
	case strings.Trim(host, "[]") == "0.0.0.0" || strings.Trim(host, "[]") == "::":
		return "", 0, fmt.Errorf("%w %q: the broker advertises the address it listens on, so clients need a concrete one; use the address they will connect to (127.0.0.1, or this machine's LAN address)", ErrAddr, addr)
	}
	return host, port, nil
}

// Addrs returns the address the broker listens on and advertises.
func (b *Broker) Addrs() []string { return b.addrs }

// DataDir returns the data directory, "" when the broker is in memory.
func (b *Broker) DataDir() string { return b.dataDir }

// Conn returns connection settings for the broker with topic prefix p.
func (b *Broker) Conn(p topology.Prefix) kconn.Config {
	return kconn.Config{Brokers: b.Addrs(), Prefix: p}
}

// Cluster returns the underlying kfake cluster, for tests.
func (b *Broker) Cluster() *kfake.Cluster { return b.cluster }

// CreateTopics creates the topic plan of set (shared topics and one task
// topic per queue) with partitions partitions, as topics.Ensure
// does; topics that exist are left as they are. It is what lets a
// processor, whose topic check refuses a missing plan, start at once.
func (b *Broker) CreateTopics(ctx context.Context, set *topology.Set, p topology.Prefix, partitions int32) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...))
	if err != nil {
		return fmt.Errorf("stepwise: dev broker admin client: %w", err)
	}
	defer cl.Close()
	return topics.Ensure(ctx, kadm.NewClient(cl), set.Topics(p), partitions, 1)
}

// Close stops the broker, writing its data to the data directory first
// when there is one.
func (b *Broker) Close() { b.cluster.Close() }

// slogLogger passes kfake's warnings and errors to slog; its info and
// debug lines (one per request) would drown everything else.
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Logf(level kfake.LogLevel, msg string, args ...any) {
	switch level {
	case kfake.LogLevelError:
		s.l.Error(fmt.Sprintf(msg, args...), "component", "broker")
	case kfake.LogLevelWarn:
		s.l.Warn(fmt.Sprintf(msg, args...), "component", "broker")
	}
}
