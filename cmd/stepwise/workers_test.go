package main

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/stepwise-run/stepwise/examples"
)

func TestExampleHandlersCoverEveryExample(t *testing.T) {
	if len(exampleHandlers) != len(examples.All()) {
		t.Errorf("handlers of %d examples, %d examples", len(exampleHandlers), len(examples.All()))
	}
	for _, e := range examples.All() {
		hs, ok := exampleHandlers[e.Name]
		if !ok {
			t.Errorf("example %s has no entry in exampleHandlers", e.Name)
			continue
		}
		set, err := e.Definitions()
		if err != nil {
			t.Fatal(err)
		}
		if got, want := slices.Sorted(maps.Keys(hs())), set.Queues(); !slices.Equal(got, want) {
			t.Errorf("example %s: handlers for %v, its workflows use %v", e.Name, got, want)
		}
	}
}

func TestSelectQueues(t *testing.T) {
	cases := []struct {
		names      []string
		only, skip string
		want       string // sorted queues, or the error's text
	}{
		{[]string{"idp"}, "", "", "assemble,classify,extract,layout,notify,ocr,render,split"},
		{[]string{"idp"}, "", "ocr,classify", "assemble,extract,layout,notify,render,split"},
		{[]string{"idp"}, "ocr", "", "ocr"},
		{[]string{"idp"}, "ocr,layout", "layout", "ocr"},
		{[]string{"idp", "word-counts"}, "", "ocr,book-split", "assemble,classify,extract,layout,notify,render,segment-word-counts,split,store-title,sum-splits"},
		{[]string{"idp"}, "", "ocr,book-split", `no queue "book-split" in the examples idp`},
		{[]string{"idp"}, "orc", "", `no queue "orc"`},
		{[]string{"idp"}, "ocr", "ocr", "leave no queue"},
	}
	for _, c := range cases {
		only, skip := queueSet{}, queueSet{}
		_ = only.Set(c.only)
		_ = skip.Set(c.skip)
		hs, err := selectQueues(c.names, only, skip)
		got := strings.Join(slices.Sorted(maps.Keys(hs)), ",")
		if err != nil {
			got = err.Error()
			if !strings.Contains(got, c.want) {
				t.Errorf("%v --queues %q --skip-queues %q: %s, want an error saying %q", c.names, c.only, c.skip, got, c.want)
			}
			continue
		}
		if got != c.want {
			t.Errorf("%v --queues %q --skip-queues %q: %s, want %s", c.names, c.only, c.skip, got, c.want)
		}
		for q, h := range hs {
			if h == nil {
				t.Errorf("queue %s has a nil handler", q)
			}
		}
	}
}
