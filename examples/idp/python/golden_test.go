// Package golden_test records what the Go ocr handler of the idp example
// answers to a set of inputs, in testdata/golden.json, which the Python OCR
// worker beside this file is tested against (test_ocr.py): every page of
// the default bundle and of a bundle of odd pages, as render gives them,
// and inputs that must fail. This test fails when the Go handler's answers
// drift from the file; `go test ./examples/idp/python -update` rewrites it.
package golden_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"testing"

	"github.com/stepwise-run/stepwise/examples/idp"
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

func run(t *testing.T, queue string, in json.RawMessage) (json.RawMessage, error) {
	t.Helper()
	return idp.Handlers(idp.WithLatency(0))[queue](context.Background(), &worker.Task{Step: queue, Queue: queue, Input: in})
}

func call(t *testing.T, name string, input any) Case {
	t.Helper()
	in, err := json.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}
	return callRaw(t, name, in)
}

func callRaw(t *testing.T, name string, in json.RawMessage) Case {
	t.Helper()
	c := Case{Name: name, Queue: idp.QueueOCR, Input: in}
	out, err := run(t, idp.QueueOCR, in)
	if err != nil {
		c.Error, c.Retryable = true, !worker.IsPermanent(err)
		return c
	}
	c.Output = out
	return c
}

// pages renders every document of bundle through the Go render handler and
// returns the OCR call of each page, with the input a page child gets.
func pages(t *testing.T, label string, bundle idp.Bundle) []Case {
	t.Helper()
	var cases []Case
	for _, d := range bundle.Documents {
		in, _ := json.Marshal(map[string]any{"document": d})
		out, err := run(t, idp.QueueRender, in)
		if err != nil {
			t.Fatalf("render %s: %v", d.Name, err)
		}
		var rendered struct {
			Name  string            `json:"name"`
			Pages []json.RawMessage `json:"pages"`
		}
		if err := json.Unmarshal(out, &rendered); err != nil {
			t.Fatal(err)
		}
		for i, scan := range rendered.Pages {
			cases = append(cases, call(t, fmt.Sprintf("%s: %s page %d", label, d.Name, i+1),
				map[string]any{"name": rendered.Name, "page": scan}))
		}
	}
	return cases
}

// scan is a hand-made page, for inputs render never gives.
func scan(number int, data []byte) map[string]any {
	return map[string]any{"number": number, "image": base64.StdEncoding.EncodeToString(data), "checksum": idp.Checksum(string(data))}
}

func cases(t *testing.T) []Case {
	var all []Case
	all = append(all, pages(t, "default bundle", idp.DefaultBundle())...)
	all = append(all, pages(t, "odd pages", idp.Bundle{Documents: []idp.Document{
		{Name: "odd.pdf", Pages: []string{"", "é, ü and 漢字 — \u2028 <b>&amp;</b>\r\n\ttabbed", "just one line"}},
	}})...)
	bad := []byte("valid \xe2\x82 truncated, \xed\xa0\x80 surrogate, \xff lone byte")
	wrapped := scan(2, []byte("a page long enough for its base64 to be wrapped over lines"))
	img := wrapped["image"].(string)
	wrapped["image"] = img[:20] + "\r\n" + img[20:40] + "\n" + img[40:]
	all = append(all,
		call(t, "invalid UTF-8 reads as one replacement per byte", map[string]any{"name": "b", "page": scan(1, bad)}),
		call(t, "image wrapped with CR and LF", map[string]any{"name": "w", "page": wrapped}),
		call(t, "no name, extra fields", map[string]any{"page": scan(3, []byte("x")), "other": 1, "extra": map[string]any{"a": 1}}),
		call(t, "null name", map[string]any{"name": nil, "page": scan(1, []byte("y"))}),
		call(t, "page number missing", map[string]any{"name": "n", "page": map[string]any{"image": "eg==", "checksum": idp.Checksum("z")}}),
		call(t, "empty page object", map[string]any{"name": "e", "page": map[string]any{}}),
		call(t, "no page", map[string]any{"name": "n"}),
		call(t, "null page", map[string]any{"name": "n", "page": nil}),
		call(t, "page not an object", map[string]any{"name": "n", "page": "text"}),
		call(t, "page a list", map[string]any{"name": "n", "page": []int{1}}),
		call(t, "name not a string", map[string]any{"name": 7, "page": scan(1, []byte("x"))}),
		call(t, "number not an integer", map[string]any{"page": map[string]any{"number": 1.5, "image": "eA==", "checksum": idp.Checksum("x")}}),
		call(t, "number a string", map[string]any{"page": map[string]any{"number": "1", "image": "eA==", "checksum": idp.Checksum("x")}}),
		callRaw(t, "number as 1.0", json.RawMessage(`{"page": {"number": 1.0, "image": "eA==", "checksum": "`+idp.Checksum("x")+`"}}`)),
		callRaw(t, "number beyond int64", json.RawMessage(`{"page": {"number": 9223372036854775808, "image": "eA==", "checksum": "`+idp.Checksum("x")+`"}}`)),
		call(t, "image not a string", map[string]any{"page": map[string]any{"number": 1, "image": 5, "checksum": "x"}}),
		call(t, "checksum of another text", map[string]any{"name": "c", "page": map[string]any{"number": 4, "image": "eA==", "checksum": idp.Checksum("y")}}),
		call(t, "image not base64", map[string]any{"page": map[string]any{"number": 1, "image": "not base64!", "checksum": idp.Checksum("x")}}),
		call(t, "image without padding", map[string]any{"page": map[string]any{"number": 1, "image": "eA", "checksum": idp.Checksum("x")}}),
		call(t, "image with a space", map[string]any{"page": map[string]any{"number": 1, "image": "eA= =", "checksum": idp.Checksum("x")}}),
	)
	return all
}

func TestGolden(t *testing.T) {
	golden.Check(t, goldenPath, cases(t), *update)
}

// TestGoldenCoversBothOutcomes keeps the file honest: every page of the
// default bundle reads, and the failing inputs fail for good.
func TestGoldenCoversBothOutcomes(t *testing.T) {
	ok, failed := 0, 0
	for _, c := range cases(t) {
		switch {
		case c.Error && c.Retryable:
			t.Errorf("%s: a retryable error; the ocr handler's input errors are permanent", c.Name)
		case c.Error:
			failed++
		default:
			ok++
		}
	}
	defaultPages := 0
	for _, d := range idp.DefaultBundle().Documents {
		defaultPages += len(d.Pages)
	}
	if ok < defaultPages+3 || failed < 10 {
		t.Errorf("%d reads and %d failures; want every default page (%d) read and at least 10 failures", ok, failed, defaultPages)
	}
}
