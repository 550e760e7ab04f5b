package tracing

import "testing"

func TestParseFormat(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
	}{
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", true},
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", false}, // zero trace id
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false}, // zero span id
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false}, // other version
		{"00-4bf92f3577b34da6a3ce929d0e0e473x-00f067aa0ba902b7-01", false},
		{"00-abc-01", false},
		{"", false},
	} {
		sc, ok := Parse(c.in)
		if ok != c.ok {
			t.Errorf("Parse(%q) ok = %v, want %v", c.in, ok, c.ok)
			continue
		}
		if ok && Format(sc) != c.in {
			t.Errorf("Format(Parse(%q)) = %q", c.in, Format(sc))
		}
	}
}

func TestAttemptParent(t *testing.T) {
	const req = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	a1 := AttemptParent(req, "ocr", 1)
	if a1 != AttemptParent(req, "ocr", 1) {
		t.Fatal("AttemptParent is not deterministic")
	}
	seen := map[string]bool{a1: true}
	for _, other := range []string{AttemptParent(req, "ocr", 2), AttemptParent(req, "docs[0]/ocr", 1), AttemptParent(req, "layout", 1)} {
		if seen[other] {
			t.Errorf("two attempts share the span %s", other)
		}
		seen[other] = true
	}
	sc, ok := Parse(a1)
	if !ok || sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || !sc.IsSampled() {
		t.Errorf("AttemptParent = %q: want the request's trace, sampled", a1)
	}
	if AttemptParent("garbage", "ocr", 1) != "" {
		t.Error("AttemptParent of a bad traceparent is not empty")
	}
}
