package idp

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/stepwise-run/stepwise/worker"
)

// slow wraps h with the simulated latency, factor times the configured one.
// A task cancelled while waiting returns the context's error (retryable).
func (c *config) slow(factor int, h worker.Handler) worker.Handler {
	d := c.latency * time.Duration(factor)
	if d == 0 {
		return h
	}
	return func(ctx context.Context, t *worker.Task) (json.RawMessage, error) {
		timer := time.NewTimer(d)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return h(ctx, t)
	}
}

// Scan is a rendered page, as render sends it to a page child.
type Scan struct {
	Number   int    `json:"number"`
	Image    string `json:"image"`    // the page "image": its text in base64
	Checksum string `json:"checksum"` // first 16 hex digits of the text's SHA-256
}

// Page is a page once read (ocr) and laid out (layout).
type Page struct {
	Number     int     `json:"number"`
	Text       string  `json:"text"`
	Confidence float64 `json:"confidence"`
	Blocks     int     `json:"blocks,omitempty"` // paragraphs: runs of non-blank lines
	Lines      int     `json:"lines,omitempty"`  // non-blank lines
	Words      int     `json:"words,omitempty"`
}

// Result is one processed document, as extract returns it and assemble
// lists it.
type Result struct {
	Name       string            `json:"name"`
	Class      string            `json:"class"`
	Fields     map[string]string `json:"fields"`
	Pages      int               `json:"pages"`
	Words      int               `json:"words"`
	Confidence float64           `json:"confidence"` // mean of the pages'
	// Reviewed is set when a person gave the class (the review signal of
	// a document classify was unsure of); left out otherwise.
	Reviewed bool `json:"reviewed,omitempty"`
}

// Summary totals an assembled bundle.
type Summary struct {
	Documents int            `json:"documents"`
	Pages     int            `json:"pages"`
	Classes   map[string]int `json:"classes"`
}

// Assembled is assemble's output, the workflow's result.
type Assembled struct {
	Documents []Result `json:"documents"`
	Summary   Summary  `json:"summary"`
}

// Classes are tried in this order; the first with the highest keyword
// score wins, and a text without any keyword is ClassOther.
var classKeywords = []struct {
	class    string
	keywords []string
}{
	{"invoice", []string{"invoice", "total due", "subtotal", "vat", "bill to"}},
	{"contract", []string{"agreement", "parties", "party", "hereby", "term"}},
	{"letter", []string{"dear", "sincerely", "yours", "regards"}},
}

// ClassOther is the class of a document no keyword matched.
const ClassOther = "other"

var errBadBundle = errors.New(`stepwise: idp: the input must be {} or {"bundle": {"documents": [{"name": "...", "pages": ["page text", ...]}]}}`)

func split(_ context.Context, t *worker.Task) (json.RawMessage, error) {
	var in struct {
		Bundle json.RawMessage `json:"bundle"`
	}
	if err := t.Decode(&in); err != nil {
		return nil, worker.Permanent(fmt.Errorf("%w: %v", errBadBundle, err))
	}
	b := DefaultBundle()
	if len(in.Bundle) > 0 {
		b = Bundle{}
		if err := json.Unmarshal(in.Bundle, &b); err != nil || !strings.HasPrefix(strings.TrimSpace(string(in.Bundle)), "{") {
			return nil, worker.Permanent(fmt.Errorf("%w: bundle: %v", errBadBundle, describeErr(err, "not an object")))
		}
	}
	for i := range b.Documents {
		d := &b.Documents[i]
		if d.Name == "" {
			d.Name = fmt.Sprintf("document-%d", i+1)
		}
		if len(d.Pages) == 0 {
			return nil, worker.Permanent(fmt.Errorf("stepwise: idp: document %d (%s) has no pages; every document needs at least one page of text", i+1, d.Name))
		}
	}
	if b.Documents == nil {
		b.Documents = []Document{}
	}
	return worker.JSON(map[string][]Document{"documents": b.Documents})
}

func describeErr(err error, otherwise string) string {
	if err != nil {
		return err.Error()
	}
	return otherwise
}

// Checksum is the checksum render writes and OCR checks.
func Checksum(text string) string {
	sum := sha256.Sum256([]byte(text))
	return hex.EncodeToString(sum[:8])
}

func render(_ context.Context, t *worker.Task) (json.RawMessage, error) {
	var in struct {
		Document *Document `json:"document"`
	}
	if err := t.Decode(&in); err != nil {
		return nil, worker.Permanent(err)
	}
	if in.Document == nil {
		return nil, worker.Permanent(errors.New(`stepwise: idp: render needs a "document"; is it fanned out over "documents"?`))
	}
	scans := make([]Scan, len(in.Document.Pages))
	for i, text := range in.Document.Pages {
		scans[i] = Scan{Number: i + 1, Image: base64.StdEncoding.EncodeToString([]byte(text)), Checksum: Checksum(text)}
	}
	return worker.JSON(map[string]any{"name": in.Document.Name, "pages": scans})
}

// OCR reads a scan: the text it carries, and a confidence in [0.90, 0.99]
// derived from its checksum, so that the same page always reads the same.
func OCR(s Scan) (Page, error) {
	raw, err := base64.StdEncoding.DecodeString(s.Image)
	if err != nil {
		return Page{}, fmt.Errorf("stepwise: idp: page %d: image is not readable: %v", s.Number, err)
	}
	text := string(raw)
	if Checksum(text) != s.Checksum {
		return Page{}, fmt.Errorf("stepwise: idp: page %d: checksum %s does not match the image (%s)", s.Number, s.Checksum, Checksum(text))
	}
	sum := sha256.Sum256(raw)
	return Page{Number: s.Number, Text: text, Confidence: 0.90 + float64(sum[0]%10)/100}, nil
}

func ocr(_ context.Context, t *worker.Task) (json.RawMessage, error) {
	var in struct {
		Name string `json:"name"`
		Page *Scan  `json:"page"`
	}
	if err := t.Decode(&in); err != nil {
		return nil, worker.Permanent(err)
	}
	if in.Page == nil {
		return nil, worker.Permanent(errors.New(`stepwise: idp: ocr needs a "page"; is it fanned out over "pages"?`))
	}
	p, err := OCR(*in.Page)
	if err != nil {
		return nil, worker.Permanent(err)
	}
	return worker.JSON(map[string]any{"name": in.Name, "page": p})
}

// Layout counts the blocks (runs of non-blank lines), non-blank lines and
// words of a page.
func Layout(p Page) Page {
	p.Blocks, p.Lines, p.Words = 0, 0, 0
	inBlock := false
	for line := range strings.Lines(p.Text) {
		if strings.TrimSpace(line) == "" {
			inBlock = false
			continue
		}
		p.Lines++
		p.Words += len(strings.Fields(line))
		if !inBlock {
			p.Blocks++
			inBlock = true
		}
	}
	return p
}

func layout(_ context.Context, t *worker.Task) (json.RawMessage, error) {
	var in struct {
		Name string `json:"name"`
		Page *Page  `json:"page"`
	}
	if err := t.Decode(&in); err != nil {
		return nil, worker.Permanent(err)
	}
	if in.Page == nil {
		return nil, worker.Permanent(errors.New(`stepwise: idp: layout needs the "page" that ocr returns`))
	}
	return worker.JSON(map[string]any{"name": in.Name, "page": Layout(*in.Page)})
}

// pagesInput is what classify and extract receive about a document.
type pagesInput struct {
	Name     string  `json:"name"`
	Class    string  `json:"class"`
	Pages    []*Page `json:"pages"`
	Reviewed bool    `json:"reviewed"` // extract: the class is a reviewer's label
}

func decodePages(t *worker.Task) (*pagesInput, error) {
	var in pagesInput
	if err := t.Decode(&in); err != nil {
		return nil, worker.Permanent(err)
	}
	for i, p := range in.Pages {
		if p == nil {
			return nil, worker.Permanent(fmt.Errorf("stepwise: idp: document %s: page %d has no layout", in.Name, i+1))
		}
	}
	return &in, nil
}

func fullText(pages []*Page) string {
	var b strings.Builder
	for _, p := range pages {
		b.WriteString(p.Text)
		b.WriteString("\n")
	}
	return b.String()
}

// Classify returns the class whose keywords occur most often in text.
func Classify(text string) string {
	class, _ := ClassifyConfidence(text)
	return class
}

// ClassifyConfidence returns Classify's class and how sure it is: the
// share of the keyword occurrences that belong to that class, rounded to
// two decimals. A text whose keywords all point to one class scores 1, as
// does a text without any keyword (ClassOther: nothing speaks against
// it); "Dear party, the invoice: sincerely yours" scores 0.6 (letter 3 of
// 5) and a tie 0.5.
func ClassifyConfidence(text string) (string, float64) {
	lower := strings.ToLower(text)
	best, bestScore, total := ClassOther, 0, 0
	for _, c := range classKeywords {
		score := 0
		for _, k := range c.keywords {
			score += countWord(lower, k)
		}
		total += score
		if score > bestScore {
			best, bestScore = c.class, score
		}
	}
	if total == 0 {
		return best, 1
	}
	return best, math.Round(float64(bestScore)/float64(total)*100) / 100
}

// countWord counts the occurrences of phrase in text that are not inside a
// longer word ("term" does not count in "determined").
func countWord(text, phrase string) int {
	n := 0
	for i := 0; ; {
		j := strings.Index(text[i:], phrase)
		if j < 0 {
			return n
		}
		start, end := i+j, i+j+len(phrase)
		if (start == 0 || !isLetter(text[start-1])) && (end == len(text) || !isLetter(text[end])) {
			n++
		}
		i = end
	}
}

func isLetter(b byte) bool { return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' }

func classify(_ context.Context, t *worker.Task) (json.RawMessage, error) {
	in, err := decodePages(t)
	if err != nil {
		return nil, err
	}
	class, confidence := ClassifyConfidence(fullText(in.Pages))
	return worker.JSON(map[string]any{"name": in.Name, "class": class, "confidence": confidence, "pages": in.Pages})
}

// fieldPatterns are the fields extracted for each class: the first
// submatch of the first match.
var fieldPatterns = map[string][]struct {
	field string
	re    *regexp.Regexp
}{
	"invoice": {
		{"invoice_number", regexp.MustCompile(`(?i)invoice\s+(?:no\.?|number|#)\s*:?\s*([A-Z0-9][A-Z0-9-]*)`)},
		{"date", regexp.MustCompile(`(?im)^date:\s*(\d{4}-\d{2}-\d{2})`)},
		{"total", regexp.MustCompile(`(?im)^total(?: due)?\s*:\s*((?:[A-Z]{3}\s*)?[0-9][0-9,]*\.[0-9]{2})`)},
		{"due_date", regexp.MustCompile(`(?i)due date\s*:\s*(\d{4}-\d{2}-\d{2})`)},
		{"bill_to", regexp.MustCompile(`(?im)^bill to:\s*(.+?)\s*$`)},
	},
	"contract": {
		{"party_a", regexp.MustCompile(`(?is)between\s+(.+?)\s+and\s+`)},
		{"party_b", regexp.MustCompile(`(?is)between\s+.+?\s+and\s+(.+?)\s*[,.(]`)},
		{"effective_date", regexp.MustCompile(`(?i)effective(?: date| as of)\s*:?\s*(\d{4}-\d{2}-\d{2})`)},
	},
	"letter": {
		{"recipient", regexp.MustCompile(`(?m)^Dear\s+([^,\n]+)`)},
		{"sender", regexp.MustCompile(`(?im)^(?:sincerely|yours sincerely|kind regards|regards),?\s*\n\s*(.+?)\s*$`)},
		{"date", regexp.MustCompile(`(\d{4}-\d{2}-\d{2})`)},
	},
}

// Extract reads the fields of a document of class from its text. Fields
// not found are left out.
func Extract(class, text string) map[string]string {
	fields := map[string]string{}
	for _, f := range fieldPatterns[class] {
		if m := f.re.FindStringSubmatch(text); m != nil {
			fields[f.field] = strings.Join(strings.Fields(m[1]), " ")
		}
	}
	return fields
}

func extract(_ context.Context, t *worker.Task) (json.RawMessage, error) {
	in, err := decodePages(t)
	if err != nil {
		return nil, err
	}
	if in.Class == "" {
		return nil, worker.Permanent(errors.New(`stepwise: idp: extract needs the "class" that classify returns`))
	}
	r := Result{Name: in.Name, Class: in.Class, Fields: Extract(in.Class, fullText(in.Pages)), Pages: len(in.Pages), Reviewed: in.Reviewed}
	conf := 0.0
	for _, p := range in.Pages {
		r.Words += p.Words
		conf += p.Confidence
	}
	if len(in.Pages) > 0 {
		r.Confidence = math.Round(conf/float64(len(in.Pages))*1000) / 1000
	}
	return worker.JSON(map[string]Result{"document": r})
}

func assemble(_ context.Context, t *worker.Task) (json.RawMessage, error) {
	var in struct {
		Documents []*Result `json:"documents"`
	}
	if err := t.Decode(&in); err != nil {
		return nil, worker.Permanent(err)
	}
	out := Assembled{Documents: make([]Result, 0, len(in.Documents)), Summary: Summary{Classes: map[string]int{}}}
	for i, d := range in.Documents {
		if d == nil {
			return nil, worker.Permanent(fmt.Errorf("stepwise: idp: document %d has no result", i+1))
		}
		out.Documents = append(out.Documents, *d)
		out.Summary.Pages += d.Pages
		out.Summary.Classes[d.Class]++
	}
	out.Summary.Documents = len(out.Documents)
	return worker.JSON(out)
}

// Notification is what notify answers: the request that failed and why.
type Notification struct {
	Request string `json:"request"`
	Step    string `json:"step"`
	Attempt int    `json:"attempt"`
	Error   string `json:"error"`
	Message string `json:"message"`
}

// notify is the workflow's onFailure handler: it gets the failure (step,
// attempt, error), the request's input and the outputs so far, and tells
// someone. Here it logs the failure and answers it as a Notification; a
// real deployment would send a mail or open a ticket.
func notify(ctx context.Context, t *worker.Task) (json.RawMessage, error) {
	var in struct {
		Failure struct {
			Step    string `json:"step"`
			Attempt int    `json:"attempt"`
			Error   string `json:"error"`
		} `json:"failure"`
	}
	if err := t.Decode(&in); err != nil {
		return nil, worker.Permanent(err)
	}
	n := Notification{Request: t.Request, Step: in.Failure.Step, Attempt: in.Failure.Attempt, Error: in.Failure.Error}
	n.Message = fmt.Sprintf("idp request %s failed at %s (attempt %d): %s", n.Request, n.Step, n.Attempt, n.Error)
	slog.WarnContext(ctx, "idp request failed", "request", n.Request, "step", n.Step, "attempt", n.Attempt, "error", n.Error)
	return worker.JSON(n)
}

// classNames lists every class Classify can return, for tests and docs.
func classNames() []string {
	names := []string{ClassOther}
	for _, c := range classKeywords {
		names = append(names, c.class)
	}
	slices.Sort(names)
	return names
}
