package processors

import (
	"context"
	"log/slog"
	"maps"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/processors/machine"
	"github.com/stepwise-run/stepwise/schemas"
)

// dropLog records the "input dropped" lines of a processor's log by reason.
type dropLog struct {
	mu       sync.Mutex
	byReason map[string]int
}

func (d *dropLog) Enabled(context.Context, slog.Level) bool { return true }
func (d *dropLog) WithAttrs([]slog.Attr) slog.Handler       { return d }
func (d *dropLog) WithGroup(string) slog.Handler            { return d }
func (d *dropLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "input dropped" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "reason" {
			d.mu.Lock()
			d.byReason[a.Value.String()]++
			d.mu.Unlock()
		}
		return true
	})
	return nil
}

func (d *dropLog) counts() map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return maps.Clone(d.byReason)
}

// Every input that changes nothing is logged once with its reason and
// counted under it: a result sent to the wrong partition, a result for a
// request nobody started, a start with an invalid id, a record naming no
// request, a duplicate start.
func TestDroppedInputsAreLoggedOnceAndCountedByReason(t *testing.T) {
	e := newEnv(t, threeSteps, 2)
	comps := e.watchCompletions()
	e.startWorker(func(tk task) ([]*kgo.Record, bool) {
		replies := []*kgo.Record{okResult(tk, nil)}
		if tk.request == "misdirected" && tk.step == "a" {
			wrong := okResult(tk, nil)
			wrong.Partition = 1 - tk.replyPartition
			replies = append([]*kgo.Record{wrong}, replies...)
		}
		return replies, false
	})
	logs := &dropLog{byReason: map[string]int{}}
	r := e.startProcessor("p1", func(c *Config) { c.Logger = slog.New(logs) })

	e.start("chain", "misdirected", "fine")
	comps.wait(t, []string{"misdirected", "fine"}, 20*time.Second)
	e.start("chain", "fine") // a duplicate
	e.produceRaw("", []byte(`{"type":"start","workflow":"chain","input":{}}`))
	e.produceRaw("bad id", []byte(`{"type":"start","workflow":"chain","id":"bad id","input":{}}`))
	ghost := &kgo.Record{Topic: e.conn.Prefix.Results(), Partition: 0, Key: []byte("ghost"), Value: []byte(`{}`),
		Headers: []kgo.RecordHeader{
			{Key: schemas.HeaderRequest, Value: []byte("ghost")},
			{Key: schemas.HeaderStep, Value: []byte("a")},
			{Key: schemas.HeaderAttempt, Value: []byte(strconv.Itoa(1))},
			{Key: schemas.HeaderStatus, Value: []byte(schemas.StatusOK)},
		}}
	if err := e.client(kgo.RecordPartitioner(kgo.ManualPartitioner())).ProduceSync(context.Background(), ghost).FirstErr(); err != nil {
		t.Fatal(err)
	}
	comps.wait(t, []string{"bad id"}, 20*time.Second)

	want := map[machine.Reason]uint64{
		ReasonWrongPartition:         1,
		machine.ReasonUnknownRequest: 1,
		machine.ReasonInvalidID:      1,
		ReasonNoID:                   1,
		machine.ReasonDuplicateStart: 1,
	}
	var got map[machine.Reason]uint64
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		got = r.p.Stats().Drops
		if maps.Equal(got, want) || time.Now().After(deadline) {
			break
		}
	}
	if !maps.Equal(got, want) {
		t.Fatalf("drops by reason = %v, want %v", got, want)
	}
	lines := logs.counts()
	for reason, n := range want {
		if lines[string(reason)] != int(n) {
			t.Errorf("%s: %d log lines, want %d (all: %v)", reason, lines[string(reason)], n, lines)
		}
	}
	if c, _ := comps.get("bad id"); c.Status != schemas.Failed || c.Error == nil {
		t.Errorf("start with an invalid id: completion %+v, want failed with the reason", c)
	}
}
