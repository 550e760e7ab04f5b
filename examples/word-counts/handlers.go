package wordcounts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/stepwise-run/stepwise/topology"
	"github.com/stepwise-run/stepwise/worker"
)

// Definitions compiles the embedded workflows.yaml.
func Definitions() (*topology.Set, error) {
	return topology.Parse("examples/word-counts/workflows.yaml", WorkflowsYAML)
}

// Option configures Register.
type Option func(*config)

type config struct {
	handle []worker.HandleOption
}

// WithHandleOptions passes opts (worker.Concurrency, for instance) to every
// Handle call of Register.
func WithHandleOptions(opts ...worker.HandleOption) Option {
	return func(c *config) { c.handle = append(c.handle, opts...) }
}

// Register registers every handler of the example on its queue.
func Register(w *worker.Worker, opts ...Option) {
	var c config
	for _, o := range opts {
		o(&c)
	}
	for queue, h := range Handlers() {
		w.Handle(queue, h, c.handle...)
	}
}

// Handlers returns the handler of each queue of the workflow.
func Handlers() map[string]worker.Handler {
	return map[string]worker.Handler{
		QueueBookSplit:  bookSplit,
		QueueSegment:    segmentWordCounts,
		QueueSumSplits:  sumSplits,
		QueueStoreTitle: storeTitle,
	}
}

// errNoSection is returned when a child's input lacks its section.
var errNoSection = errors.New("stepwise: word-counts: input has no \"section\" object; is the step fanned out over \"sections\"?")

// textInput is the request input of book-split and store-title.
type textInput struct {
	Text *string `json:"text"`
}

// text returns the input's text, or the bundled book when it has none. An
// input whose "text" is not a string can never succeed: a permanent error.
func text(t *worker.Task) (string, error) {
	var in textInput
	if err := t.Decode(&in); err != nil {
		return "", worker.Permanent(fmt.Errorf("%w (want {\"text\": \"...\"} or {})", err))
	}
	if in.Text == nil {
		return Book, nil
	}
	return *in.Text, nil
}

func bookSplit(_ context.Context, t *worker.Task) (json.RawMessage, error) {
	txt, err := text(t)
	if err != nil {
		return nil, err
	}
	return worker.JSON(map[string][]Section{"sections": Split(txt)})
}

func segmentWordCounts(_ context.Context, t *worker.Task) (json.RawMessage, error) {
	var in struct {
		Section *Section `json:"section"`
	}
	if err := t.Decode(&in); err != nil {
		return nil, worker.Permanent(err)
	}
	if in.Section == nil {
		return nil, worker.Permanent(errNoSection)
	}
	words, counts := CountWords(in.Section.Text)
	return worker.JSON(map[string]SectionCount{"section": {
		Chapter: in.Section.Chapter, Words: words, Counts: counts,
	}})
}

func sumSplits(_ context.Context, t *worker.Task) (json.RawMessage, error) {
	var in struct {
		Sections []*SectionCount `json:"sections"`
	}
	if err := t.Decode(&in); err != nil {
		return nil, worker.Permanent(err)
	}
	sections := make([]SectionCount, 0, len(in.Sections))
	for i, s := range in.Sections {
		if s == nil {
			return nil, worker.Permanent(fmt.Errorf("stepwise: word-counts: section %d has no counts", i))
		}
		sections = append(sections, *s)
	}
	return worker.JSON(Summarise(sections, TopWords))
}

func storeTitle(_ context.Context, t *worker.Task) (json.RawMessage, error) {
	txt, err := text(t)
	if err != nil {
		return nil, err
	}
	return worker.JSON(map[string]string{"title": FindTitle(txt)})
}
