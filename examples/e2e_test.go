package examples_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/examples"
	"github.com/stepwise-run/stepwise/examples/idp"
	wordcounts "github.com/stepwise-run/stepwise/examples/word-counts"
	"github.com/stepwise-run/stepwise/internal/devbroker"
	"github.com/stepwise-run/stepwise/internal/testlog"
	"github.com/stepwise-run/stepwise/processors"
	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/topology"
	"github.com/stepwise-run/stepwise/worker"
)

// stack is the whole of Stepwise in one test process: an embedded broker,
// one processor and the workers of both examples.
type stack struct {
	t      *testing.T
	broker *devbroker.Broker
	prefix topology.Prefix
	client *kgo.Client // produces starts, reads completions

	mu          sync.Mutex
	completions map[string]schemas.Completion
	arrived     chan struct{} // closed and replaced on every completion
}

func testLogger(t *testing.T) *slog.Logger { return testlog.New(t) }

func newStack(t *testing.T) *stack {
	t.Helper()
	b, err := devbroker.Start(devbroker.WithAddr("127.0.0.1:0"), devbroker.WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	set, err := examples.Definitions()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	prefix := topology.DefaultPrefix
	if err := b.CreateTopics(ctx, set, prefix, 3); err != nil {
		t.Fatal(err)
	}
	conn := b.Conn(prefix)

	p, err := processors.New(processors.Config{Conn: conn, Set: set, ReplicaID: "e2e", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(worker.WithConn(conn), worker.WithLogger(testLogger(t)), worker.WithCommitInterval(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	examples.Register(w)

	var wg sync.WaitGroup
	for name, run := range map[string]func(context.Context) error{"processor": p.Run, "worker": w.Run} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(ctx); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}()
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(conn.Brokers...),
		kgo.ConsumeTopics(prefix.Completions()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	s := &stack{t: t, broker: b, prefix: prefix, client: cl,
		completions: map[string]schemas.Completion{}, arrived: make(chan struct{})}
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.follow(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		cl.Close()
	})
	return s
}

// follow collects every completion until ctx is done.
func (s *stack) follow(ctx context.Context) {
	for ctx.Err() == nil {
		fs := s.client.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			var c schemas.Completion
			if err := json.Unmarshal(r.Value, &c); err != nil {
				s.t.Errorf("completion %s is not JSON: %v", r.Value, err)
				return
			}
			s.mu.Lock()
			s.completions[c.Request] = c
			close(s.arrived)
			s.arrived = make(chan struct{})
			s.mu.Unlock()
		})
	}
}

// start produces a start; input is sent as raw JSON.
func (s *stack) start(id, workflow, input string) {
	s.t.Helper()
	v, err := json.Marshal(schemas.NewStart(workflow, 0, id, json.RawMessage(input)))
	if err != nil {
		s.t.Fatal(err)
	}
	r := &kgo.Record{Topic: s.prefix.Requests(), Key: []byte(id), Value: []byte(v)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.client.ProduceSync(ctx, r).FirstErr(); err != nil {
		s.t.Fatal(err)
	}
}

// wait returns the completion of id.
func (s *stack) wait(id string) schemas.Completion {
	s.t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		s.mu.Lock()
		c, ok := s.completions[id]
		arrived := s.arrived
		s.mu.Unlock()
		if ok {
			return c
		}
		select {
		case <-arrived:
		case <-deadline:
			s.t.Fatalf("no completion of %s within 60s", id)
		}
	}
}

func decode[T any](t *testing.T, c schemas.Completion) T {
	t.Helper()
	if c.Status != schemas.Succeeded {
		t.Fatalf("%s: status %s, error %+v, want succeeded", c.Request, c.Status, c.Error)
	}
	var v T
	if err := json.Unmarshal(c.Output, &v); err != nil {
		t.Fatalf("%s: output %s: %v", c.Request, c.Output, err)
	}
	return v
}

// The test's own count: chapters and words by regular expression.
var (
	chapterLine = regexp.MustCompile(`(?m)^CHAPTER [IVXLCDM]+\.[ \t\r]*$`)
	wordPattern = regexp.MustCompile(`[\p{L}\p{N}]+(?:['’][\p{L}\p{N}]+)*`)
	titleLine   = regexp.MustCompile(`(?m)^Title:[ \t]*(.*?)[ \t\r]*$`)
)

type wordCountsOutput struct {
	TotalWords int      `json:"total_words"`
	Chapters   int      `json:"chapters"`
	TopWords   [][2]any `json:"top_words"`
	Title      string   `json:"title"`
}

// checkWordCounts compares the workflow's output with an independent
// count of text.
func checkWordCounts(t *testing.T, text string, got wordCountsOutput) {
	t.Helper()
	locs := chapterLine.FindAllStringIndex(text, -1)
	counts := map[string]int{}
	total := 0
	for i, loc := range locs {
		end := len(text)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		for _, w := range wordPattern.FindAllString(strings.ToLower(text[loc[1]:end]), -1) {
			counts[w]++
			total++
		}
	}
	if got.TotalWords != total || got.Chapters != len(locs) {
		t.Errorf("%d words in %d chapters, test counts %d in %d", got.TotalWords, got.Chapters, total, len(locs))
	}
	words := slices.Collect(maps.Keys(counts))
	sort.Slice(words, func(i, j int) bool {
		if counts[words[i]] != counts[words[j]] {
			return counts[words[i]] > counts[words[j]]
		}
		return words[i] < words[j]
	})
	words = words[:min(10, len(words))]
	if len(got.TopWords) != len(words) {
		t.Fatalf("top words %v, want %d", got.TopWords, len(words))
	}
	for i, w := range words {
		if got.TopWords[i][0] != w || got.TopWords[i][1] != float64(counts[w]) {
			t.Errorf("top word %d: %v, test counts %s×%d", i, got.TopWords[i], w, counts[w])
		}
	}
	if m := titleLine.FindStringSubmatch(text); m != nil && got.Title != m[1] {
		t.Errorf("title %q, want %q", got.Title, m[1])
	}
}

func TestExamplesEndToEnd(t *testing.T) {
	s := newStack(t)

	own := "Title: Two Tides\nCHAPTER I.\nThe tide came in.\n\nCHAPTER II.\nThe tide went out; the keeper's lamp stayed lit.\n"
	ownBundle := `{"bundle": {"documents": [
		{"name": "bill.txt", "pages": ["Invoice No. A-7\nTotal due: 12.00", "Subtotal: 12.00\n\nthanks"]},
		{"name": "note.txt", "pages": ["Dear Kim,\n\nsee you.\n\nSincerely,\nLee"]}]}}`
	s.start("wc-bundled", wordcounts.WorkflowName, `{}`)
	s.start("wc-own", wordcounts.WorkflowName, mustJSON(t, map[string]string{"text": own}))
	s.start("idp-default", idp.WorkflowName, `{}`)
	s.start("idp-own", idp.WorkflowName, ownBundle)
	s.start("bad-workflow", "no-such-workflow", `{}`)
	s.start("bad-input", idp.WorkflowName, `[1, 2]`)
	s.start("bad-document", idp.WorkflowName, `{"bundle": {"documents": [{"name": "empty.pdf", "pages": []}]}}`)

	t.Run("book-word-counts bundled", func(t *testing.T) {
		checkWordCounts(t, wordcounts.Book, decode[wordCountsOutput](t, s.wait("wc-bundled")))
	})
	t.Run("book-word-counts own text", func(t *testing.T) {
		got := decode[wordCountsOutput](t, s.wait("wc-own"))
		checkWordCounts(t, own, got)
		if got.TotalWords != 13 || got.Title != "Two Tides" {
			t.Errorf("own text: %+v", got)
		}
	})
	t.Run("idp default bundle", func(t *testing.T) {
		got := decode[idp.Assembled](t, s.wait("idp-default"))
		bundle := idp.DefaultBundle()
		if len(got.Documents) != len(bundle.Documents) {
			t.Fatalf("%d documents, bundle has %d", len(got.Documents), len(bundle.Documents))
		}
		pages := 0
		for i, d := range got.Documents {
			want := bundle.Documents[i]
			pages += len(want.Pages)
			if d.Name != want.Name || d.Pages != len(want.Pages) {
				t.Errorf("document %d: %s with %d pages, want %s with %d", i, d.Name, d.Pages, want.Name, len(want.Pages))
			}
			if d.Class != idp.Classify(strings.Join(want.Pages, "\n")) || d.Class == idp.ClassOther {
				t.Errorf("document %d: class %s", i, d.Class)
			}
			if len(d.Fields) == 0 {
				t.Errorf("document %d: no fields extracted", i)
			}
		}
		if got.Summary.Documents != len(bundle.Documents) || got.Summary.Pages != pages {
			t.Errorf("summary %+v, want %d documents, %d pages", got.Summary, len(bundle.Documents), pages)
		}
	})
	t.Run("idp own bundle", func(t *testing.T) {
		got := decode[idp.Assembled](t, s.wait("idp-own"))
		if len(got.Documents) != 2 || got.Documents[0].Name != "bill.txt" || got.Documents[0].Pages != 2 ||
			got.Documents[0].Class != "invoice" || got.Documents[0].Fields["invoice_number"] != "A-7" ||
			got.Documents[1].Name != "note.txt" || got.Documents[1].Pages != 1 || got.Documents[1].Class != "letter" ||
			got.Documents[1].Fields["recipient"] != "Kim" || got.Summary.Pages != 3 {
			t.Errorf("assembled %+v", got)
		}
	})
	failed := func(t *testing.T, id, step string, says ...string) {
		t.Helper()
		c := s.wait(id)
		if c.Status != schemas.Failed || c.Error == nil {
			t.Fatalf("%s: status %s, error %+v, want failed", id, c.Status, c.Error)
		}
		if c.Error.Step != step {
			t.Errorf("%s: failed at step %q, want %q", id, c.Error.Step, step)
		}
		for _, w := range says {
			if !strings.Contains(c.Error.Message, w) {
				t.Errorf("%s: message %q does not say %q", id, c.Error.Message, w)
			}
		}
	}
	t.Run("unknown workflow", func(t *testing.T) {
		failed(t, "bad-workflow", "", `unknown workflow "no-such-workflow"`)
	})
	t.Run("input not an object", func(t *testing.T) {
		failed(t, "bad-input", "", "invalid input", "object")
	})
	t.Run("document without pages", func(t *testing.T) {
		failed(t, "bad-document", idp.QueueSplit, "document 1 (empty.pdf) has no pages")
	})
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRegistry(t *testing.T) {
	set, err := examples.Definitions()
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Order) != len(examples.All()) {
		t.Errorf("workflows %v for %d examples", set.Order, len(examples.All()))
	}
	// The examples' queues do not collide, so one worker runs them all.
	handlers := append(slices.Collect(maps.Keys(wordcounts.Handlers())), slices.Collect(maps.Keys(idp.Handlers()))...)
	slices.Sort(handlers)
	if !slices.Equal(handlers, set.Queues()) {
		t.Errorf("handlers %v, queues %v", handlers, set.Queues())
	}
	for _, e := range examples.All() {
		got, err := examples.Lookup(e.Name)
		if err != nil || got.Workflow != e.Workflow || set.Lookup(e.Workflow) == nil {
			t.Errorf("Lookup(%s) = %+v, %v", e.Name, got, err)
		}
	}
	if _, err := examples.Lookup("nope"); err == nil || !strings.Contains(err.Error(), "word-counts") {
		t.Errorf("Lookup(nope): %v, want an error listing the examples", err)
	}
	// A workflow defined twice is refused.
	wc, _ := wordcounts.Definitions()
	if _, err := examples.Merge(set, wc); err == nil || !strings.Contains(err.Error(), wordcounts.WorkflowName) {
		t.Errorf("Merge with a duplicate: %v", err)
	}
}
