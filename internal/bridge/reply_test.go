package bridge

import (
	"errors"
	"strings"
	"testing"
)

func TestCorrelationID(t *testing.T) {
	tests := []struct{ instance, step, want string }{
		{"r-1", "store-title", "r-1:store-title"},
		{"r-1/section-counts[3]", "section-counts[3]/segment-word-counts", "r-1/section-counts[3]:segment-word-counts"},
		{"6f1c0a52-9d7e-4c55-8a43-1f7b2c3d4e5f", "docs[1]/pages[7]/ocr", "6f1c0a52-9d7e-4c55-8a43-1f7b2c3d4e5f:ocr"},
	}
	for _, tt := range tests {
		if got := CorrelationID(tt.instance, tt.step); got != tt.want {
			t.Errorf("CorrelationID(%q, %q) = %q, want %q", tt.instance, tt.step, got, tt.want)
		}
	}
}

func TestDecodeReply(t *testing.T) {
	tests := []struct {
		name, body string
		out        string // "" when an error is expected
		empty      bool
		reason     string // in the error
	}{
		{name: "object", body: `{"section": {"words": 3}}`, out: `{"section": {"words": 3}}`},
		{name: "object with spaces", body: " \n{\"a\":1}\n", out: `{"a":1}`},
		{name: "empty body", body: "", out: `{}`, empty: true},
		{name: "null", body: "null", out: `{}`, empty: true},
		{name: "not JSON", body: "Traceback (most recent call last):", reason: "not JSON"},
		{name: "truncated", body: `{"a": `, reason: "not JSON"},
		{name: "array", body: `[1, 2]`, reason: "a JSON array, not an object"},
		{name: "string", body: `"done"`, reason: "a JSON string, not an object"},
		{name: "number", body: `42`, reason: "a JSON number, not an object"},
		{name: "boolean", body: `true`, reason: "a JSON boolean, not an object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, empty, err := decodeReply([]byte(tt.body))
			if tt.out == "" {
				if err == nil || !errors.Is(err, errBadReply) || !strings.Contains(err.Error(), tt.reason) {
					t.Fatalf("decodeReply(%q) = %s, %v; want an error naming %q", tt.body, out, err, tt.reason)
				}
				return
			}
			if err != nil || string(out) != tt.out || empty != tt.empty {
				t.Fatalf("decodeReply(%q) = %s, %v, %v; want %s, %v", tt.body, out, empty, err, tt.out, tt.empty)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	b := backoff{100e6, 10e9}
	for attempt, max := range []int64{100e6, 200e6, 400e6, 800e6} {
		if d := int64(b.wait(attempt)); d < max/2 || d > max {
			t.Errorf("wait(%d) = %d, want within [%d, %d]", attempt, d, max/2, max)
		}
	}
	if d := b.wait(100); d > 10e9 || d < 5e9 {
		t.Errorf("wait(100) = %s, want capped at 10s", d)
	}
}
