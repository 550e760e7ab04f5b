package topology

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	tests := []struct {
		name    string
		policy  RetryPolicy
		attempt int
		want    time.Duration
	}{
		{"default second attempt waits Initial", DefaultRetry, 2, time.Second},
		{"default third", DefaultRetry, 3, 2 * time.Second},
		{"default fourth", DefaultRetry, 4, 4 * time.Second},
		{"default sixth", DefaultRetry, 6, 16 * time.Second},
		{"default seventh is capped (32s > 30s)", DefaultRetry, 7, 30 * time.Second},
		{"far attempts stay capped without overflow", DefaultRetry, 10_000, 30 * time.Second},
		{"multiplier 1 is constant", RetryPolicy{MaxAttempts: 9, Initial: 250 * time.Millisecond, Max: time.Minute, Multiplier: 1}, 8, 250 * time.Millisecond},
		{"fractional multiplier", RetryPolicy{MaxAttempts: 9, Initial: time.Second, Max: time.Minute, Multiplier: 1.5}, 4, 2250 * time.Millisecond},
		{"Initial above Max waits Max", RetryPolicy{MaxAttempts: 3, Initial: time.Minute, Max: 10 * time.Second, Multiplier: 2}, 2, 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.policy.Backoff(tt.attempt); got != tt.want {
				t.Errorf("Backoff(%d) = %v, want %v", tt.attempt, got, tt.want)
			}
		})
	}
}

func TestSingular(t *testing.T) {
	tests := []struct{ in, want string }{
		{"sections", "section"},
		{"pages", "page"},
		{"documents", "document"},
		{"boss", "bos"}, // one trailing s only, like the original
		{"s", "s"},      // too short to drop anything
		{"ss", "s"},
		{"data", "data"},
		{"subid_list", "subid_list"},
		{"Items", "Item"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := Singular(tt.in); got != tt.want {
			t.Errorf("Singular(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
