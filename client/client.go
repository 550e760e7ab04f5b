package client

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/kconn"
	"github.com/stepwise-run/stepwise/processors/machine"
	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/topology"
)

// Completion is the event of a finished request (completion.schema.json).
type Completion = machine.Completion

// Errors of the client.
var (
	ErrInvalidID       = errors.New("stepwise: invalid request id")
	ErrInvalidInput    = errors.New("stepwise: invalid input; it must be a JSON object")
	ErrInvalidWorkflow = errors.New("stepwise: no workflow name given")
	ErrNotFound        = errors.New("stepwise: request not found")
	ErrNoBrokers       = errors.New("stepwise: no brokers; use WithBrokers, WithConn or WithKafkaOpts(kgo.SeedBrokers(...))")
)

var idPattern = regexp.MustCompile(schemas.RequestIDPattern)

// maxMarks bounds the completion offsets remembered for Wait. Starting far
// more requests than this without waiting for them only makes a later Wait
// read from the state first (see Wait).
const maxMarks = 10000

// Client talks to one Stepwise installation. It is safe for concurrent use.
type Client struct {
	cfg  *config
	base []kgo.Opt
	cl   *kgo.Client // producer with the default (murmur2 key hash) partitioner
	adm  *kadm.Client

	mu struct {
		sync.Mutex
		marks map[string]mark // request id → completions position before its start
		order []string        // ids in marks, oldest first, for eviction
	}
}

// mark is where the completion of a started request will be found: at or
// after offset in partition of the completions topic.
type mark struct {
	partition int32
	offset    int64
}

type config struct {
	brokers   []string
	conn      *kconn.Config
	kafkaOpts []kgo.Opt
	prefix    topology.Prefix
	prefixSet bool
	logger    *slog.Logger
}

// Option configures a Client.
type Option func(*config) error

// WithBrokers sets the seed brokers (host:port).
func WithBrokers(brokers ...string) Option {
	return func(c *config) error {
		if len(brokers) == 0 {
			return ErrNoBrokers
		}
		c.brokers = append([]string(nil), brokers...)
		return nil
	}
}

// WithConn takes brokers, TLS, SASL and the topic prefix from the shared
// connection settings. WithPrefix, when also given, wins over conn.Prefix.
func WithConn(conn kconn.Config) Option {
	return func(c *config) error {
		c.conn = &conn
		return nil
	}
}

// WithKafkaOpts adds franz-go options to every client. The partitioner and
// isolation level the protocol needs are applied after them.
func WithKafkaOpts(opts ...kgo.Opt) Option {
	return func(c *config) error {
		c.kafkaOpts = append(c.kafkaOpts, opts...)
		return nil
	}
}

// WithPrefix sets the topic prefix (default "stepwise.").
func WithPrefix(p topology.Prefix) Option {
	return func(c *config) error {
		c.prefix, c.prefixSet = p, true
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

// New validates the options and creates the client's producer.
func New(opts ...Option) (*Client, error) {
	cfg := &config{prefix: topology.DefaultPrefix, logger: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		if err := o(cfg); err != nil {
			return nil, err
		}
	}
	var base []kgo.Opt
	if cfg.conn != nil {
		o, err := cfg.conn.Opts()
		if err != nil {
			return nil, err
		}
		base = append(base, o...)
		if !cfg.prefixSet && cfg.conn.Prefix != "" {
			cfg.prefix = cfg.conn.Prefix
		}
	}
	if len(cfg.brokers) > 0 {
		base = append(base, kgo.SeedBrokers(cfg.brokers...))
	}
	if len(base) == 0 && len(cfg.kafkaOpts) == 0 {
		return nil, ErrNoBrokers
	}
	base = append(base, cfg.kafkaOpts...)
	cl, err := kgo.NewClient(append(append([]kgo.Opt{}, base...),
		// The home partition is the key's murmur2 hash, as with every
		// Kafka client's default partitioner, so a cancel from any client
		// reaches the same partition as the start.
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.RequiredAcks(kgo.AllISRAcks()),
	)...)
	if err != nil {
		return nil, fmt.Errorf("stepwise: client: %w", err)
	}
	c := &Client{cfg: cfg, base: base, cl: cl, adm: kadm.NewClient(cl)}
	c.mu.marks = map[string]mark{}
	return c, nil
}

// Close releases the client's connections.
func (c *Client) Close() { c.cl.Close() }

// NewID returns a random (version 4) UUID, the id of a request started
// without one.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// ValidateID returns an error wrapping ErrInvalidID unless id matches the
// protocol's pattern.
func ValidateID(id string) error {
	if !idPattern.MatchString(id) {
		return fmt.Errorf("%w %q: use 1 to 128 letters, digits and . _ : -, starting with a letter or digit", ErrInvalidID, id)
	}
	return nil
}

// ValidateInput returns an error wrapping ErrInvalidInput unless input is a
// JSON object; a syntax error names its line and column.
func ValidateInput(input []byte) error {
	var obj map[string]json.RawMessage
	err := json.Unmarshal(input, &obj)
	if err == nil && obj != nil {
		return nil
	}
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		line, col := position(input, se.Offset)
		return fmt.Errorf("%w: line %d, column %d: %v", ErrInvalidInput, line, col, se)
	case errors.As(err, &te):
		return fmt.Errorf("%w: it is %s", ErrInvalidInput, article(te.Value))
	case err != nil:
		return fmt.Errorf("%w: %v", ErrInvalidInput, err)
	default:
		return fmt.Errorf("%w: it is null", ErrInvalidInput)
	}
}

// position converts a byte offset (as json.SyntaxError gives: the bytes
// read before the error) to a 1-based line and column.
func position(b []byte, offset int64) (line, col int) {
	line, col = 1, 1
	for i := int64(0); i < offset-1 && i < int64(len(b)); i++ {
		if b[i] == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

func article(kind string) string {
	switch kind {
	case "array", "object":
		return "an " + kind
	default:
		return "a " + kind
	}
}

// Start asks the processors to run workflow with input, a JSON object
// (empty means {}), as request id; an empty id gets a random UUID. It
// returns the id once the start is acknowledged by the broker. Starting an
// id that already exists does nothing (the first start wins).
func (c *Client) Start(ctx context.Context, workflow, id string, input json.RawMessage) (string, error) {
	if workflow == "" {
		return "", ErrInvalidWorkflow
	}
	if id == "" {
		id = NewID()
	}
	if err := ValidateID(id); err != nil {
		return "", err
	}
	if len(input) == 0 {
		input = json.RawMessage("{}")
	}
	if err := ValidateInput(input); err != nil {
		return "", err
	}
	value, err := json.Marshal(struct {
		Type     string          `json:"type"`
		Workflow string          `json:"workflow"`
		ID       string          `json:"id"`
		Input    json.RawMessage `json:"input"`
	}{"start", workflow, id, input})
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidInput, err)
	}

	// Note where completions end before the start exists: the completion
	// cannot be written earlier, so Wait reading from here cannot miss it.
	ends, err := c.adm.ListEndOffsets(ctx, c.cfg.prefix.Completions())
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return "", fmt.Errorf("stepwise: list completions offsets: %w", err)
	}

	r := &kgo.Record{Topic: c.cfg.prefix.Requests(), Key: []byte(id), Value: value}
	if err := c.cl.ProduceSync(ctx, r).FirstErr(); err != nil {
		return "", fmt.Errorf("stepwise: produce start of %s: %w", id, err)
	}
	if end, ok := ends.Lookup(c.cfg.prefix.Completions(), r.Partition); ok {
		c.remember(id, mark{partition: r.Partition, offset: end.Offset})
	} else {
		c.cfg.logger.Warn("completions topic has no partition for the home partition; is it created with as many partitions as requests?",
			slog.Int("partition", int(r.Partition)))
	}
	return id, nil
}

func (c *Client) remember(id string, m mark) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.mu.marks[id]; !ok {
		c.mu.order = append(c.mu.order, id)
	}
	c.mu.marks[id] = m
	for len(c.mu.order) > maxMarks {
		delete(c.mu.marks, c.mu.order[0])
		c.mu.order = c.mu.order[1:]
	}
}

func (c *Client) recall(id string) (mark, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.mu.marks[id]
	return m, ok
}

func (c *Client) forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.mu.marks, id) // its place in order is skipped at eviction
}

// Cancel asks the processors to cancel request id. It returns once the
// cancel is acknowledged by the broker; the request's completion (status
// cancelled, unless it finished first) follows. Cancelling an unknown or
// finished request does nothing.
func (c *Client) Cancel(ctx context.Context, id, reason string) error {
	if err := ValidateID(id); err != nil {
		return err
	}
	value, _ := json.Marshal(struct {
		Type   string `json:"type"`
		ID     string `json:"id"`
		Reason string `json:"reason,omitempty"`
	}{"cancel", id, reason})
	r := &kgo.Record{Topic: c.cfg.prefix.Requests(), Key: []byte(id), Value: value}
	if err := c.cl.ProduceSync(ctx, r).FirstErr(); err != nil {
		return fmt.Errorf("stepwise: produce cancel of %s: %w", id, err)
	}
	return nil
}
