package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/internal/logkey"
	"github.com/stepwise-run/stepwise/kconn"
	"github.com/stepwise-run/stepwise/topology"
)

// Relay is the physical-limit baseline: it moves a scenario's records over
// the same topics and hops as the processors (request → task → result → …
// → completion) with the same client settings, but keeps no state record,
// runs no state machine and uses no transactions. Its only memory is a
// counter per running fan-out stage, the least a join needs.
//
// A task's step header is "<stage>/<index>", so a result says by itself
// which stage it answers; the plan (Scenario.Stages) says what follows.
type Relay struct {
	conn kconn.Config
	sc   *Scenario
	log  *slog.Logger
	// pending counts the results still awaited per request and stage
	// ("<request>/<stage>"). Loop goroutine only.
	pending map[string]int
}

// NewRelay returns a relay of sc's plan on the topics of conn.Prefix.
func NewRelay(conn kconn.Config, sc *Scenario, log *slog.Logger) *Relay {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Relay{conn: conn, sc: sc, log: log, pending: map[string]int{}}
}

// RelayGroup is the consumer group of the relay of an installation.
func RelayGroup(p topology.Prefix) string { return string(p) + "relay" }

// Run relays until ctx is done.
func (r *Relay) Run(ctx context.Context) error {
	opts, err := r.conn.Opts()
	if err != nil {
		return err
	}
	p := r.conn.Prefix
	cl, err := kgo.NewClient(append(opts,
		kgo.ConsumerGroup(RelayGroup(p)),
		kgo.ConsumeTopics(p.Requests(), p.Results()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(10*time.Millisecond),
		kgo.ProducerLinger(0),
		kgo.RecordPartitioner(relayPartitioner{prefix: p, hashed: kgo.StickyKeyPartitioner(nil)}),
	)...)
	if err != nil {
		return fmt.Errorf("stepwise: relay client: %w", err)
	}
	defer cl.Close()
	for {
		fs := cl.PollRecords(ctx, 1000)
		if ctx.Err() != nil {
			return nil
		}
		fs.EachError(func(t string, part int32, err error) {
			r.log.Warn("relay fetch", "topic", t, "partition", part, logkey.Error, err)
		})
		fs.EachRecord(func(rec *kgo.Record) {
			for _, out := range r.next(rec) {
				cl.Produce(ctx, out, func(_ *kgo.Record, err error) {
					if err != nil && ctx.Err() == nil {
						r.log.Warn("relay produce", logkey.Error, err)
					}
				})
			}
		})
	}
}

// relayPartitioner sends completions to the partition set on the record
// (the home partition) and tasks by key hash, as the processors do.
type relayPartitioner struct {
	prefix topology.Prefix
	hashed kgo.Partitioner
}

func (rp relayPartitioner) ForTopic(topic string) kgo.TopicPartitioner {
	if topic == rp.prefix.Completions() {
		return kgo.ManualPartitioner().ForTopic(topic)
	}
	return rp.hashed.ForTopic(topic)
}

// next returns the records that follow rec in the plan.
func (r *Relay) next(rec *kgo.Record) []*kgo.Record {
	id := string(rec.Key)
	if rec.Topic == r.conn.Prefix.Requests() {
		var start struct {
			Input json.RawMessage `json:"input"`
		}
		if err := json.Unmarshal(rec.Value, &start); err != nil {
			r.log.Warn("relay: unreadable start", "request", id, logkey.Error, err)
			return nil
		}
		return r.stage(id, rec.Partition, 0, start.Input)
	}
	var step, reply string
	for _, h := range rec.Headers {
		switch h.Key {
		case "stepwise-step":
			step = string(h.Value)
		case "stepwise-status":
			reply = string(h.Value)
		}
	}
	stage, _, ok := parseRelayStep(step)
	if !ok || stage >= len(r.sc.Stages) {
		r.log.Warn("relay: result of an unknown step", "request", id, "step", step)
		return nil
	}
	if reply != "ok" {
		r.log.Warn("relay: step failed", "request", id, "step", step, "result", string(rec.Value))
	}
	if w := r.sc.Stages[stage].Width; w > 1 {
		key := id + "/" + strconv.Itoa(stage)
		left, seen := r.pending[key]
		if !seen {
			left = w
		}
		if left--; left > 0 {
			r.pending[key] = left
			return nil
		}
		delete(r.pending, key)
	}
	if stage+1 < len(r.sc.Stages) {
		return r.stage(id, rec.Partition, stage+1, rec.Value)
	}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	v := `{"id":` + strconv.Quote(id) + `,"workflow":` + strconv.Quote(r.sc.Workflow) +
		`,"status":"succeeded","output":` + string(rec.Value) + `,"started":"` + now + `","finished":"` + now + `"}`
	return []*kgo.Record{{Topic: r.conn.Prefix.Completions(), Partition: rec.Partition, Key: rec.Key, Value: []byte(v)}}
}

// stage returns the tasks of stage s of request id. A single task gets
// input; the tasks of a wider stage get {"item": i}, as fan-out children do.
func (r *Relay) stage(id string, home int32, s int, input json.RawMessage) []*kgo.Record {
	st := r.sc.Stages[s]
	p := r.conn.Prefix
	out := make([]*kgo.Record, st.Width)
	part := []byte(strconv.Itoa(int(home)))
	for i := range out {
		v := input
		if st.Width > 1 {
			v = json.RawMessage(`{"item":` + strconv.Itoa(i) + `}`)
		}
		out[i] = &kgo.Record{
			Topic: p.Tasks(st.Queue), Key: []byte(id), Value: v,
			Headers: []kgo.RecordHeader{
				{Key: "stepwise-request", Value: []byte(id)},
				{Key: "stepwise-workflow", Value: []byte(r.sc.Workflow)},
				{Key: "stepwise-step", Value: []byte(relayStep(s, i))},
				{Key: "stepwise-attempt", Value: []byte("1")},
				{Key: "stepwise-instance", Value: []byte(id)},
				{Key: "stepwise-reply-topic", Value: []byte(p.Results())},
				{Key: "stepwise-reply-partition", Value: part},
			},
		}
	}
	return out
}

// relayStep is the step header of task i of stage s.
func relayStep(s, i int) string { return strconv.Itoa(s) + "/" + strconv.Itoa(i) }

// parseRelayStep reverses relayStep.
func parseRelayStep(step string) (stage, index int, ok bool) {
	a, b, found := strings.Cut(step, "/")
	if !found {
		return 0, 0, false
	}
	s, err1 := strconv.Atoi(a)
	i, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || s < 0 || i < 0 {
		return 0, 0, false
	}
	return s, i, true
}
