package processors

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/schemas"
)

// Each output fits, but the state record holding two of them would not:
// the processor fails the step with a message instead of producing a
// record the broker would refuse.
func TestStateRecordTooLarge(t *testing.T) {
	e := newEnv(t, threeSteps, 1)
	comps := e.watchCompletions()
	e.startWorker(func(tk task) ([]*kgo.Record, bool) {
		return []*kgo.Record{okResult(tk, map[string]any{tk.step: strings.Repeat("x", 40_000)})}, false
	})
	r := e.startProcessor("p1", func(c *Config) { c.MaxPayload = 64 << 10 })
	e.start("chain", "big")
	comps.wait(t, []string{"big"}, 20*time.Second)
	c, n := comps.get("big")
	if n != 1 || c.Status != schemas.Failed || c.Error == nil || c.Error.Step != "b" || !strings.Contains(c.Error.Message, "limit") {
		t.Fatalf("%d completions: %+v %+v", n, c, c.Error)
	}
	if st := r.p.Stats(); st.Aborted != 0 || st.Drops[ReasonOversize] != 0 {
		t.Errorf("stats %+v: the refusal needs no abort", st)
	}
}

// The broker refuses a task record (its topic's max.message.bytes is lower
// than the processor's limit): the batch aborts once, then the result
// whose effects were refused fails its step, and the partition moves on.
func TestBrokerRefusesRecord(t *testing.T) {
	e := newEnv(t, threeSteps, 1)
	if _, err := e.admin().AlterTopicConfigs(context.Background(),
		[]kadm.AlterConfig{{Name: "max.message.bytes", Value: kadm.StringPtr("2000")}}, e.conn.Prefix.Tasks("b")); err != nil {
		t.Fatal(err)
	}
	comps := e.watchCompletions()
	e.startWorker(func(tk task) ([]*kgo.Record, bool) {
		if tk.request == "big" && tk.step == "a" {
			return []*kgo.Record{okResult(tk, map[string]any{"a": noise(3000)})}, false
		}
		return echo(tk)
	})
	r := e.startProcessor("p1")
	e.start("chain", "big", "small")
	comps.wait(t, []string{"big", "small"}, 20*time.Second)
	c, n := comps.get("big")
	if n != 1 || c.Status != schemas.Failed || c.Error == nil || c.Error.Step != "a" {
		t.Fatalf("big: %d completions: status %s, error %+v", n, c.Status, c.Error)
	}
	if c, n := comps.get("small"); n != 1 || c.Status != schemas.Succeeded {
		t.Fatalf("small: %d completions: %+v", n, c)
	}
	if st := r.p.Stats(); st.Aborted == 0 {
		t.Errorf("stats %+v: expected the refused batch to abort", st)
	}
}

// noise returns n bytes of hex that do not compress much (the producer
// compresses batches, and the broker's limit applies to compressed bytes).
func noise(n int) string {
	b := make([]byte, n/2+1)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}
