//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/stepwise-run/stepwise/examples"
	"github.com/stepwise-run/stepwise/examples/idp"
	wordcounts "github.com/stepwise-run/stepwise/examples/word-counts"
	"github.com/stepwise-run/stepwise/kconn"
)

// wordCounts is the part of book-word-counts' output the tests check.
type wordCounts struct {
	TotalWords int    `json:"total_words"`
	Chapters   int    `json:"chapters"`
	Title      string `json:"title"`
}

// TestExamples runs both examples on real Kafka the way the deployment
// files do: two `stepwise run` replicas sharing six partitions and the Go
// workers of both examples in one `stepwise workers --example all`
// process. Hundreds of idp bundles (nested fan-out: documents, then pages)
// and dozens of book-word-counts requests each complete exactly once, with
// the outputs the examples' own tests expect.
func TestExamples(t *testing.T) {
	e := newEnv(t)
	var yamls [][]byte
	for _, ex := range examples.All() {
		yamls = append(yamls, ex.YAML)
	}
	const partitions = 6
	s := e.newStackOf(yamls, partitions)
	s.procEnv = []string{idp.LatencyEnv + "=1ms"}
	tl := e.tally()
	s.exampleWorkers("all")
	s.processor("p1")
	s.processor("p2")
	owned := s.waitOwned(partitions, "p1", "p2")
	fmt.Printf("examples: replicas own %v\n", owned)

	own := "Title: Two Tides\nCHAPTER I.\nThe tide came in.\n\nCHAPTER II.\nThe tide went out; the keeper's lamp stayed lit.\n"
	ownBundle := idp.Bundle{Documents: []idp.Document{
		{Name: "bill.txt", Pages: []string{"Invoice No. A-7\nTotal due: 12.00", "Subtotal: 12.00\n\nthanks"}},
		{Name: "note.txt", Pages: []string{"Dear Kim,\n\nsee you.\n\nSincerely,\nLee"}},
	}}
	idps := ids("idp", 300)
	books := ids("wc", 30)
	loads := []*load{
		e.submitWith(idp.WorkflowName, idps, 100, func(string) any { return map[string]any{} }),
		e.submitWith(wordcounts.WorkflowName, books, 20, func(string) any { return map[string]any{} }),
		e.submitWith(wordcounts.WorkflowName, []string{"wc-own"}, 1, func(string) any { return map[string]any{"text": own} }),
		e.submitWith(idp.WorkflowName, []string{"idp-own"}, 1, func(string) any { return map[string]any{"bundle": ownBundle} }),
	}
	for _, l := range loads {
		l.wait(t)
	}
	all := slices.Concat(idps, books, []string{"wc-own", "idp-own"})
	tl.check(t, "examples", all, 90*time.Second)

	decode := func(id string, v any) bool {
		t.Helper()
		c, ok := tl.output(id)
		if !ok {
			return false
		}
		if err := json.Unmarshal(c.Output, v); err != nil {
			t.Errorf("%s: output %s: %v", id, c.Output, err)
			return false
		}
		return true
	}
	bundle := idp.DefaultBundle()
	pages := 0
	for _, d := range bundle.Documents {
		pages += len(d.Pages)
	}
	for _, id := range idps {
		var got idp.Assembled
		if decode(id, &got) && (len(got.Documents) != len(bundle.Documents) || got.Summary.Pages != pages) {
			t.Errorf("%s: %d documents of %d pages, want %d of %d", id, len(got.Documents), got.Summary.Pages, len(bundle.Documents), pages)
		}
	}
	var first wordCounts
	decode(books[0], &first)
	if first.TotalWords == 0 || first.Chapters == 0 {
		t.Errorf("bundled book: %+v, want words and chapters", first)
	}
	for _, id := range books[1:] {
		var got wordCounts
		if decode(id, &got) && got != first {
			t.Errorf("%s: %+v, but %s counted %+v in the same book", id, got, books[0], first)
		}
	}
	var mine wordCounts
	if decode("wc-own", &mine) && (mine.TotalWords != 13 || mine.Chapters != 2 || mine.Title != "Two Tides") {
		t.Errorf("own text: %+v, want 13 words in 2 chapters, title Two Tides", mine)
	}
	var assembled idp.Assembled
	if decode("idp-own", &assembled) {
		d := assembled.Documents
		if len(d) != 2 || d[0].Class != "invoice" || d[0].Fields["invoice_number"] != "A-7" || d[0].Pages != 2 ||
			d[1].Class != "letter" || d[1].Fields["recipient"] != "Kim" || assembled.Summary.Pages != 3 {
			t.Errorf("own bundle assembled as %+v", assembled)
		}
	}

	// Both replicas did work: every partition, whoever owns it, completed
	// requests.
	perPartition := map[int32]int{}
	for _, id := range all {
		if p, ok := tl.partitionOf(id); ok {
			perPartition[p]++
		}
	}
	fmt.Printf("examples: completions per partition %v\n", perPartition)
	for _, replica := range slices.Sorted(maps.Keys(owned)) {
		for _, p := range owned[replica] {
			if perPartition[p] == 0 {
				t.Errorf("partition %d (replica %s) completed nothing", p, replica)
			}
		}
	}
}

// TestSCRAMStack runs a processor, a worker and the topic creation over
// SASL_PLAINTEXT with SCRAM-SHA-512 (the listener on 9096, user stepwise),
// the password coming from STEPWISE_SASL_PASSWORD as the Kubernetes
// manifests pass it; a request completes. TLS is not exercised against a
// broker: the test cluster has no TLS listener (kconn's TLS settings are
// covered by its unit tests).
func TestSCRAMStack(t *testing.T) {
	t.Setenv(kconn.PasswordEnv, scramPassword) // inherited by every child process
	e := newEnv(t)
	s := e.newStack(chainYAML, 2,
		"--brokers", saslBrokers()[0],
		"--sasl-mechanism", kconn.MechanismScramSHA512,
		"--sasl-user", scramUser)
	tl := e.tally() // the test itself reads and writes on the plaintext listener
	s.echoWorker("scram", 0)
	p := s.processor("scram")
	s.waitOwned(2, "scram")
	reqs := ids("scram", 20)
	e.submit("chain", reqs, 100).wait(t)
	tl.check(t, "scram-sha-512", reqs, 60*time.Second)
	if !p.logContains("partitions restored") {
		t.Error("the processor's log does not show it restoring partitions over SASL")
	}
}
