package main

import (
	"slices"
	"testing"

	"github.com/stepwise-run/stepwise/internal/bench"
)

func TestParseLoad(t *testing.T) {
	for _, tc := range []struct {
		in   string
		load string
		rate float64
		ok   bool
	}{
		{"auto", bench.LoadAuto, 0, true},
		{"0", bench.LoadClosed, 0, true},
		{"2400", bench.LoadOpen, 2400, true},
		{"12.5", bench.LoadOpen, 12.5, true},
		{"-1", "", 0, false},
		{"fast", "", 0, false},
	} {
		load, rate, err := parseLoad(tc.in)
		if (err == nil) != tc.ok || load != tc.load || rate != tc.rate {
			t.Errorf("parseLoad(%q) = %q, %v, %v; want %q, %v, ok=%v", tc.in, load, rate, err, tc.load, tc.rate, tc.ok)
		}
	}
}

func TestParseReplicas(t *testing.T) {
	if got, err := parseReplicas(" 1, 2,3 ,"); err != nil || !slices.Equal(got, []int{1, 2, 3}) {
		t.Errorf("parseReplicas: %v, %v", got, err)
	}
	if got, err := parseReplicas(""); err != nil || got != nil {
		t.Errorf("parseReplicas of nothing: %v, %v", got, err)
	}
	for _, bad := range []string{"0", "1,x", "-2"} {
		if _, err := parseReplicas(bad); err == nil {
			t.Errorf("parseReplicas(%q) accepted", bad)
		}
	}
}
