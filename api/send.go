package api

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"regexp"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/kconn"
	"github.com/stepwise-run/stepwise/schemas"
)

// Sender produces starts and cancels to the requests topic. Its Start
// must be idempotent per id (the processors ignore a second start of a
// known id).
type Sender interface {
	Start(ctx context.Context, workflow, id string, input json.RawMessage) error
	// Cancel asks to cancel request id; partition is its home partition,
	// or -1 when unknown (the key hash is used).
	Cancel(ctx context.Context, id, reason string, partition int32) error
	Close()
}

var requestID = regexp.MustCompile(schemas.RequestIDPattern)

// validID reports whether id is a valid request id.
func validID(id string) bool { return requestID.MatchString(id) }

// newID returns a random (version 4) UUID.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// kafkaSender is the Sender of a Kafka cluster.
type kafkaSender struct {
	cl    *kgo.Client
	topic string
}

// newKafkaSender returns a Sender producing to conn's requests topic.
// Records go to the partition of their key's murmur2 hash (the default of
// Kafka clients, so a start lands where any other client would put it),
// unless a cancel names the home partition.
func newKafkaSender(conn kconn.Config, extra ...kgo.Opt) (*kafkaSender, error) {
	opts, err := conn.Opts()
	if err != nil {
		return nil, err
	}
	hash := kgo.StickyKeyPartitioner(nil)
	part := kgo.BasicConsistentPartitioner(func(topic string) func(*kgo.Record, int) int {
		tp := hash.ForTopic(topic)
		return func(r *kgo.Record, n int) int {
			if p, ok := r.Context.Value(homeKey{}).(int32); ok && int(p) < n {
				return int(p)
			}
			return tp.Partition(r, n)
		}
	})
	cl, err := kgo.NewClient(append(append(opts, extra...),
		kgo.RecordPartitioner(part),
		kgo.ProducerLinger(0),
	)...)
	if err != nil {
		return nil, fmt.Errorf("stepwise: requests producer: %w", err)
	}
	return &kafkaSender{cl: cl, topic: conn.Prefix.Requests()}, nil
}

type homeKey struct{}

// startBody and cancelBody are start.schema.json and cancel.schema.json.
type startBody struct {
	Type     string          `json:"type"`
	Workflow string          `json:"workflow"`
	ID       string          `json:"id"`
	Input    json.RawMessage `json:"input"`
}

type cancelBody struct {
	Type   string `json:"type"`
	ID     string `json:"id"`
	Reason string `json:"reason,omitempty"`
}

func (s *kafkaSender) Start(ctx context.Context, workflow, id string, input json.RawMessage) error {
	v, err := json.Marshal(startBody{Type: "start", Workflow: workflow, ID: id, Input: input})
	if err != nil {
		return err
	}
	return s.cl.ProduceSync(ctx, &kgo.Record{Topic: s.topic, Key: []byte(id), Value: v}).FirstErr()
}

func (s *kafkaSender) Cancel(ctx context.Context, id, reason string, partition int32) error {
	v, err := json.Marshal(cancelBody{Type: "cancel", ID: id, Reason: reason})
	if err != nil {
		return err
	}
	rctx := ctx
	if partition >= 0 {
		rctx = context.WithValue(ctx, homeKey{}, partition)
	}
	r := &kgo.Record{Topic: s.topic, Key: []byte(id), Value: v, Context: rctx}
	return s.cl.ProduceSync(ctx, r).FirstErr()
}

func (s *kafkaSender) Close() { s.cl.Close() }
