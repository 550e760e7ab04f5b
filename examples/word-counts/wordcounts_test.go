package wordcounts

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stepwise-run/stepwise/examples/word-counts/internal/bookgen"
	"github.com/stepwise-run/stepwise/topology"
	"github.com/stepwise-run/stepwise/worker"
)

// The test's own definitions of chapters and words, written independently
// of the handlers' scanners: regular expressions over the whole text.
var (
	chapterLine = regexp.MustCompile(`(?m)^CHAPTER [IVXLCDM]+\.[ \t\r]*$`)
	wordPattern = regexp.MustCompile(`[\p{L}\p{N}]+(?:['’][\p{L}\p{N}]+)*`)
)

// referenceCounts counts the words of every chapter of text.
func referenceCounts(text string) (chapters int, total int, counts map[string]int) {
	locs := chapterLine.FindAllStringIndex(text, -1)
	counts = map[string]int{}
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
	return len(locs), total, counts
}

func run(t *testing.T, queue string, input any) (map[string]json.RawMessage, error) {
	t.Helper()
	in, err := json.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Handlers()[queue](context.Background(), &worker.Task{Step: queue, Queue: queue, Input: in})
	if err != nil {
		return nil, err
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(out, &obj); err != nil {
		t.Fatalf("%s: output is not a JSON object: %s", queue, out)
	}
	return obj, nil
}

func mustRun(t *testing.T, queue string, input any) map[string]json.RawMessage {
	t.Helper()
	obj, err := run(t, queue, input)
	if err != nil {
		t.Fatalf("%s: %v", queue, err)
	}
	return obj
}

func TestBundledBookIsTheGeneratorsOutput(t *testing.T) {
	if !bytes.Equal([]byte(Book), bookgen.Generate()) {
		t.Fatal("book.txt differs from bookgen.Generate(); run go generate ./examples/word-counts")
	}
	if n := len(Book); n < 20_000 || n > 50_000 {
		t.Errorf("bundled book is %d bytes, want 20-50 KB", n)
	}
}

func TestDefinitionsAreTheOriginalExample(t *testing.T) {
	set, err := Definitions()
	if err != nil {
		t.Fatal(err)
	}
	if set.Lookup(WorkflowName) == nil {
		t.Fatalf("no workflow %q in %v", WorkflowName, set.Order)
	}
	// Same graph as the original manager's example kept in topology's
	// test data.
	orig, err := topology.Load("../../topology/testdata/word-counts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var got, want bytes.Buffer
	if err := topology.WriteDot(&got, set.Lookup(WorkflowName)); err != nil {
		t.Fatal(err)
	}
	if err := topology.WriteDot(&want, orig.Lookup(WorkflowName)); err != nil {
		t.Fatal(err)
	}
	if got.String() != want.String() {
		t.Errorf("graph differs from the original example:\n%s\nwant:\n%s", got.String(), want.String())
	}
	// Every queue has a handler and every handler a queue.
	queues := slices.Sorted(maps.Keys(Handlers()))
	if !slices.Equal(set.Queues(), queues) {
		t.Errorf("workflow queues %v, handlers for %v", set.Queues(), queues)
	}
}

// TestPipelineOnBundledBook runs the handlers in the order the workflow
// does, joining the fan-out as the processor does, and checks the counts
// against the test's own count of the book.
func TestPipelineOnBundledBook(t *testing.T) {
	split := mustRun(t, QueueBookSplit, map[string]any{})
	if len(split) != 1 {
		t.Errorf("book-split output has keys %v, want only sections", slices.Sorted(maps.Keys(split)))
	}
	var sections []json.RawMessage
	if err := json.Unmarshal(split["sections"], &sections); err != nil {
		t.Fatal(err)
	}
	wantChapters, wantTotal, wantCounts := referenceCounts(Book)
	if len(sections) != wantChapters || wantChapters != bookgen.Chapters {
		t.Fatalf("%d sections, reference finds %d chapters, generator wrote %d", len(sections), wantChapters, bookgen.Chapters)
	}
	sent := 0
	var joined []json.RawMessage
	for i, s := range sections {
		var sec Section
		if err := json.Unmarshal(s, &sec); err != nil {
			t.Fatal(err)
		}
		sent += len(sec.Text)
		child := mustRun(t, QueueSegment, map[string]json.RawMessage{"section": s})
		var sc SectionCount
		if err := json.Unmarshal(child["section"], &sc); err != nil {
			t.Fatal(err)
		}
		if want := "CHAPTER " + bookgen.Roman(i+1) + "."; sc.Chapter != want {
			t.Errorf("section %d: chapter %q, want %q", i, sc.Chapter, want)
		}
		joined = append(joined, child["section"])
	}
	if sent >= len(Book) {
		t.Errorf("book-split sent %d bytes of text for a %d-byte book: each chapter should travel once, the title page not at all", sent, len(Book))
	}
	sum := mustRun(t, QueueSumSplits, map[string]any{"sections": joined})
	var got Summary
	if err := json.Unmarshal(mustMarshal(t, sum), &got); err != nil {
		t.Fatal(err)
	}
	if got.TotalWords != wantTotal || got.Chapters != wantChapters {
		t.Errorf("total %d in %d chapters, reference %d in %d", got.TotalWords, got.Chapters, wantTotal, wantChapters)
	}
	checkTop(t, got.TopWords, wantCounts)

	title := mustRun(t, QueueStoreTitle, map[string]any{})
	if string(title["title"]) != `"`+bookgen.Title+`"` {
		t.Errorf("title %s, want %q", title["title"], bookgen.Title)
	}
}

// checkTop compares top with the reference's ten most frequent words.
func checkTop(t *testing.T, top []WordCount, reference map[string]int) {
	t.Helper()
	words := slices.Collect(maps.Keys(reference))
	sort.Slice(words, func(i, j int) bool {
		if reference[words[i]] != reference[words[j]] {
			return reference[words[i]] > reference[words[j]]
		}
		return words[i] < words[j]
	})
	if len(words) > TopWords {
		words = words[:TopWords]
	}
	if len(top) != len(words) {
		t.Fatalf("%d top words, want %d", len(top), len(words))
	}
	for i, w := range words {
		if top[i].Word != w || top[i].Count != reference[w] {
			t.Errorf("top word %d: %s×%d, reference %s×%d", i, top[i].Word, top[i].Count, w, reference[w])
		}
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCountWords(t *testing.T) {
	cases := []struct {
		text  string
		total int
		want  map[string]int
	}{
		{"", 0, map[string]int{}},
		{"The keeper's LAMP, the lamp!", 5, map[string]int{"the": 2, "keeper's": 1, "lamp": 2}},
		{"'quoted' rock-face 42nd", 4, map[string]int{"quoted": 1, "rock": 1, "face": 1, "42nd": 1}},
		{"Café’s déjà-vu", 3, map[string]int{"café’s": 1, "déjà": 1, "vu": 1}},
		{"it's' 'tis ''", 2, map[string]int{"it's": 1, "tis": 1}},
	}
	for _, c := range cases {
		total, counts := CountWords(c.text)
		if total != c.total || !maps.Equal(counts, c.want) {
			t.Errorf("CountWords(%q) = %d %v, want %d %v", c.text, total, counts, c.total, c.want)
		}
		// The regular expression of the reference agrees on every case.
		if n := len(wordPattern.FindAllString(c.text, -1)); n != c.total {
			t.Errorf("reference finds %d words in %q, case says %d", n, c.text, c.total)
		}
	}
}

func TestSplit(t *testing.T) {
	cases := []struct {
		name string
		text string
		want []Section
	}{
		{"blank", " \n\n", []Section{}},
		{"no chapters", "just words\n", []Section{{"", "just words\n"}}},
		{"title page dropped", "Title: X\n\nCHAPTER I.\none\nCHAPTER II.  \r\ntwo\n",
			[]Section{{"CHAPTER I.", "one\n"}, {"CHAPTER II.", "two\n"}}},
		{"not headings", "CHAPTER I.\nCHAPTER 1.\nCHAPTER IV. and more\nchapter v.\n CHAPTER V.\n",
			[]Section{{"CHAPTER I.", "CHAPTER 1.\nCHAPTER IV. and more\nchapter v.\n CHAPTER V.\n"}}},
		{"empty chapter", "CHAPTER XL.\nCHAPTER XLI.", []Section{{"CHAPTER XL.", ""}, {"CHAPTER XLI.", ""}}},
	}
	for _, c := range cases {
		if got := Split(c.text); !slices.Equal(got, c.want) {
			t.Errorf("%s: Split = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestOwnText(t *testing.T) {
	text := "Title:  A Short One \nCHAPTER I.\nTide and tide.\nCHAPTER II.\nNo tide.\n"
	split := mustRun(t, QueueBookSplit, map[string]string{"text": text})
	var sections []Section
	if err := json.Unmarshal(split["sections"], &sections); err != nil {
		t.Fatal(err)
	}
	if len(sections) != 2 {
		t.Fatalf("sections %v", sections)
	}
	var counts []SectionCount
	for _, s := range sections {
		out := mustRun(t, QueueSegment, map[string]Section{"section": s})
		var sc SectionCount
		if err := json.Unmarshal(out["section"], &sc); err != nil {
			t.Fatal(err)
		}
		counts = append(counts, sc)
	}
	got := Summarise(counts, TopWords)
	want := Summary{TotalWords: 5, Chapters: 2, TopWords: []WordCount{{"tide", 3}, {"and", 1}, {"no", 1}}}
	if got.TotalWords != want.TotalWords || got.Chapters != want.Chapters || !slices.Equal(got.TopWords, want.TopWords) {
		t.Errorf("summary %+v, want %+v", got, want)
	}
	title := mustRun(t, QueueStoreTitle, map[string]string{"text": text})
	if string(title["title"]) != `"A Short One"` {
		t.Errorf("title %s", title["title"])
	}
	if title := mustRun(t, QueueStoreTitle, map[string]string{"text": "no title"}); string(title["title"]) != `""` {
		t.Errorf("title of an untitled text: %s", title["title"])
	}
}

func TestBadInputsArePermanent(t *testing.T) {
	cases := []struct {
		queue string
		input any
		says  string
	}{
		{QueueBookSplit, map[string]any{"text": 42}, "text"},
		{QueueStoreTitle, map[string]any{"text": []string{"a"}}, "text"},
		{QueueSegment, map[string]any{}, `no "section"`},
		{QueueSegment, map[string]any{"section": "x"}, "section"},
		{QueueSumSplits, map[string]any{"sections": []any{nil}}, "section 0 has no counts"},
		{QueueSumSplits, map[string]any{"sections": "x"}, "sections"},
	}
	for _, c := range cases {
		_, err := run(t, c.queue, c.input)
		if err == nil || !worker.IsPermanent(err) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s %v: error %v, want a permanent error mentioning %q", c.queue, c.input, err, c.says)
		}
	}
}

func TestWordCountJSON(t *testing.T) {
	b, err := json.Marshal([]WordCount{{"a", 2}})
	if err != nil || string(b) != `[["a",2]]` {
		t.Fatalf("%s %v", b, err)
	}
	var back []WordCount
	if err := json.Unmarshal(b, &back); err != nil || back[0] != (WordCount{"a", 2}) {
		t.Fatalf("%v %v", back, err)
	}
	if err := json.Unmarshal([]byte(`[["a",2,3]]`), &back); err == nil {
		t.Error("a three-element pair was accepted")
	}
}
