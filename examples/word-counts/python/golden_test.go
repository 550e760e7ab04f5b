// Package golden_test records what the Go handlers of the word-counts
// example answer to a set of inputs, in testdata/golden.json, which the
// Python workers beside this file are tested against
// (test_wordcounts.py). This test fails when the Go handlers' answers drift
// from the file; `go test ./examples/word-counts/python -update` rewrites it.
package golden_test

import (
	"context"
	"encoding/json"
	"flag"
	"testing"

	wordcounts "github.com/stepwise-run/stepwise/examples/word-counts"
	"github.com/stepwise-run/stepwise/internal/golden"
	"github.com/stepwise-run/stepwise/worker"
)

var update = flag.Bool("update", false, "rewrite testdata/golden.json")

const goldenPath = "testdata/golden.json"

// Case is one handler call: its input and either its output or whether
// its error is retryable.
type Case struct {
	Name      string          `json:"name"`
	Queue     string          `json:"queue"`
	Input     json.RawMessage `json:"input"`
	Output    json.RawMessage `json:"output,omitempty"`
	Error     bool            `json:"error,omitempty"`
	Retryable bool            `json:"retryable,omitempty"`
}

func call(t *testing.T, name, queue string, input any) Case {
	t.Helper()
	in, err := json.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}
	c := Case{Name: name, Queue: queue, Input: in}
	out, err := wordcounts.Handlers()[queue](context.Background(), &worker.Task{Step: queue, Queue: queue, Input: in})
	if err != nil {
		c.Error, c.Retryable = true, !worker.IsPermanent(err)
		return c
	}
	c.Output = out
	return c
}

// chain runs a text through the whole workflow and returns every call.
func chain(t *testing.T, name string, input map[string]any) []Case {
	t.Helper()
	split := call(t, name+": book-split", wordcounts.QueueBookSplit, input)
	var sections struct {
		Sections []json.RawMessage `json:"sections"`
	}
	if err := json.Unmarshal(split.Output, &sections); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	cases := []Case{split, call(t, name+": store-title", wordcounts.QueueStoreTitle, input)}
	var counted []json.RawMessage
	for _, s := range sections.Sections {
		c := call(t, name+": segment-word-counts", wordcounts.QueueSegment, map[string]any{"section": s})
		var out struct {
			Section json.RawMessage `json:"section"`
		}
		if err := json.Unmarshal(c.Output, &out); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		counted = append(counted, out.Section)
		cases = append(cases, c)
	}
	if counted == nil {
		counted = []json.RawMessage{}
	}
	return append(cases, call(t, name+": sum-splits", wordcounts.QueueSumSplits, map[string]any{"sections": counted}))
}

func cases(t *testing.T) []Case {
	var all []Case
	all = append(all, chain(t, "bundled book", map[string]any{})...)
	all = append(all, chain(t, "chapters with CRLF, padding and a false heading", map[string]any{
		"text": "Title:   Two Chapters  \r\nAuthor: nobody\r\n\r\nCHAPTER I.  \r\nOne, two; TWO three’s don't 'quoted' end'\r\nCHAPTER iv.\r\nCHAPTER IV.\r\nx 42 x² İstanbul ÉCOLE école",
	})...)
	all = append(all, chain(t, "no chapter lines", map[string]any{"text": "Just words, words and\vmore\u2028words; no Title: here"})...)
	all = append(all, chain(t, "blank text", map[string]any{"text": " \n\t\u00a0 "})...)
	all = append(all,
		call(t, "null text is the book", wordcounts.QueueStoreTitle, map[string]any{"text": nil}),
		call(t, "text that is not a string", wordcounts.QueueBookSplit, map[string]any{"text": 5}),
		call(t, "title of a text that is not a string", wordcounts.QueueStoreTitle, map[string]any{"text": []int{1}}),
		call(t, "segment without a section", wordcounts.QueueSegment, map[string]any{"other": 1}),
		call(t, "segment with a null section", wordcounts.QueueSegment, map[string]any{"section": nil}),
		call(t, "segment of a section that is not an object", wordcounts.QueueSegment, map[string]any{"section": "text"}),
		call(t, "segment of a section without text", wordcounts.QueueSegment, map[string]any{"section": map[string]any{"chapter": "CHAPTER I."}}),
		call(t, "sum without sections", wordcounts.QueueSumSplits, map[string]any{}),
		call(t, "sum with a null section", wordcounts.QueueSumSplits, map[string]any{"sections": []any{nil}}),
		call(t, "sum with fractional words", wordcounts.QueueSumSplits, map[string]any{"sections": []any{map[string]any{"words": 1.5}}}),
		call(t, "sum with ties broken alphabetically", wordcounts.QueueSumSplits, map[string]any{"sections": []any{
			map[string]any{"chapter": "A", "words": 14, "counts": map[string]int{"b": 2, "a": 2, "é": 2, "z": 2, "c": 1, "d": 1, "e": 1, "f": 1, "g": 1, "h": 1}},
			map[string]any{"chapter": "B", "words": 1, "counts": map[string]int{"b": 1, "ab": 1}},
		}}),
	)
	return all
}

func TestGolden(t *testing.T) {
	golden.Check(t, goldenPath, cases(t), *update)
}
