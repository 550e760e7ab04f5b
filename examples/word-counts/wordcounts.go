package wordcounts

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// WorkflowName is the name the workflow is started by.
const WorkflowName = "book-word-counts"

// Queues of the workflow's steps, one handler each.
const (
	QueueBookSplit  = "book-split"
	QueueSegment    = "segment-word-counts"
	QueueSumSplits  = "sum-splits"
	QueueStoreTitle = "store-title"
)

// TopWords is how many words sum-splits lists in top_words.
const TopWords = 10

// WorkflowsYAML is workflows.yaml, the definition of book-word-counts in the
// original manager's format.
//
//go:embed workflows.yaml
var WorkflowsYAML []byte

// Book is the bundled text, used when a request carries no "text". It is
// generated (see internal/bookgen), not taken from a published book.
//
//go:embed book.txt
var Book string

// Section is one chapter of a text, as book-split sends it to a child.
type Section struct {
	Chapter string `json:"chapter"`
	Text    string `json:"text"`
}

// SectionCount is what segment-word-counts returns for one section.
type SectionCount struct {
	Chapter string         `json:"chapter"`
	Words   int            `json:"words"`
	Counts  map[string]int `json:"counts"` // every word of the section
}

// WordCount is one entry of top_words; it encodes as [word, count].
type WordCount struct {
	Word  string
	Count int
}

// MarshalJSON encodes the pair as a two-element array.
func (wc WordCount) MarshalJSON() ([]byte, error) {
	return json.Marshal([]any{wc.Word, wc.Count})
}

// UnmarshalJSON decodes a two-element array [word, count].
func (wc *WordCount) UnmarshalJSON(b []byte) error {
	var pair []json.RawMessage
	if err := json.Unmarshal(b, &pair); err != nil {
		return err
	}
	if len(pair) != 2 {
		return fmt.Errorf("stepwise: word count must be [word, count], got %d elements", len(pair))
	}
	if err := json.Unmarshal(pair[0], &wc.Word); err != nil {
		return err
	}
	return json.Unmarshal(pair[1], &wc.Count)
}

// Summary is sum-splits' output.
type Summary struct {
	TotalWords int         `json:"total_words"`
	Chapters   int         `json:"chapters"`
	TopWords   []WordCount `json:"top_words"`
}

// Split cuts text into chapters at lines that read "CHAPTER <roman>."
// (trailing spaces and a carriage return allowed). Text before the first
// chapter line is dropped; a text without chapter lines is one section
// named "", or none when it is blank.
func Split(text string) []Section {
	var out []Section
	var cur *Section
	var body strings.Builder
	flush := func() {
		if cur != nil {
			cur.Text = body.String()
			out = append(out, *cur)
		}
		body.Reset()
	}
	for line := range strings.Lines(text) {
		if heading, ok := chapterHeading(line); ok {
			flush()
			cur = &Section{Chapter: heading}
			continue
		}
		body.WriteString(line)
	}
	if cur == nil {
		if strings.TrimSpace(text) == "" {
			return []Section{}
		}
		return []Section{{Chapter: "", Text: text}}
	}
	flush()
	return out
}

// chapterHeading reports whether line is a chapter heading and returns it
// without surrounding space.
func chapterHeading(line string) (string, bool) {
	h := strings.TrimRight(line, " \t\r\n")
	numeral, ok := strings.CutPrefix(h, "CHAPTER ")
	if !ok {
		return "", false
	}
	numeral, ok = strings.CutSuffix(numeral, ".")
	if !ok || numeral == "" {
		return "", false
	}
	for _, r := range numeral {
		if !strings.ContainsRune("IVXLCDM", r) {
			return "", false
		}
	}
	return h, true
}

// isApostrophe reports the characters that join two parts of one word.
func isApostrophe(r rune) bool { return r == '\'' || r == '\u2019' }

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

// CountWords counts the words of text (see the package documentation for
// what a word is) and returns the total and the count of each word.
func CountWords(text string) (int, map[string]int) {
	counts := map[string]int{}
	total := 0
	var word strings.Builder
	end := func() {
		if word.Len() > 0 {
			counts[word.String()]++
			total++
			word.Reset()
		}
	}
	for i, r := range text {
		switch {
		case isWordRune(r):
			word.WriteRune(unicode.ToLower(r))
		case isApostrophe(r) && word.Len() > 0 && nextIsWordRune(text[i+utf8.RuneLen(r):]):
			word.WriteRune(r)
		default:
			end()
		}
	}
	end()
	return total, counts
}

func nextIsWordRune(rest string) bool {
	r, _ := utf8.DecodeRuneInString(rest)
	return r != utf8.RuneError && isWordRune(r)
}

// Summarise adds up the section counts: total words, number of chapters and
// the n most frequent words (ties broken alphabetically).
func Summarise(sections []SectionCount, n int) Summary {
	all := map[string]int{}
	s := Summary{Chapters: len(sections)}
	for _, sec := range sections {
		s.TotalWords += sec.Words
		for w, c := range sec.Counts {
			all[w] += c
		}
	}
	s.TopWords = make([]WordCount, 0, len(all))
	for w, c := range all {
		s.TopWords = append(s.TopWords, WordCount{w, c})
	}
	slices.SortFunc(s.TopWords, func(a, b WordCount) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		return strings.Compare(a.Word, b.Word)
	})
	if len(s.TopWords) > n {
		s.TopWords = s.TopWords[:n]
	}
	return s
}

// FindTitle returns the value of the first line starting with "Title:",
// trimmed, or "" when there is none.
func FindTitle(text string) string {
	for line := range strings.Lines(text) {
		if rest, ok := strings.CutPrefix(line, "Title:"); ok {
			return strings.TrimSpace(rest)
		}
	}
	return ""
}
