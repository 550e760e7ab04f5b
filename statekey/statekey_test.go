package statekey

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for key, want := range map[string][2]string{
		"r-1":                      {"r-1", ""},
		"r-1/docs[0]":              {"r-1", "docs[0]"},
		"r-1/docs[12]/pages[7]":    {"r-1", "docs[12]/pages[7]"},
		"r-1/docs":                 {"r-1", "docs"},
		"r-1/docs[1]/pages":        {"r-1", "docs[1]/pages"},
		"a.b:c/x_y-z[3]/q[0]/fan2": {"a.b:c", "x_y-z[3]/q[0]/fan2"},
	} {
		r, p, err := Parse(key)
		if err != nil || r != want[0] || p != want[1] {
			t.Errorf("Parse(%q) = %q, %q, %v; want %q", key, r, p, err, want)
		}
	}
	for _, bad := range []string{"", "/docs[0]", "r-1/", "r-1//x", "r-1/docs/pages[1]", "r-1/docs[01]", "r-1/docs[-1]",
		"r-1/docs[x]", "r-1/docs[1", "r-1/[1]", "r-1/docs[1]]", "r[1]/x"} {
		if _, _, err := Parse(bad); !errors.Is(err, ErrKey) {
			t.Errorf("Parse(%q) = %v, want ErrKey", bad, err)
		}
	}
}

func TestPaths(t *testing.T) {
	child := ChildPath(ChildPath("", "docs", 3), "pages", 0)
	if child != "docs[3]/pages[0]" {
		t.Fatalf("child path %q", child)
	}
	if p, s, i, ok := ParentOf(child); !ok || p != "docs[3]" || s != "pages" || i != 0 {
		t.Errorf("ParentOf(%q) = %q %q %d %v", child, p, s, i, ok)
	}
	if _, _, _, ok := ParentOf("docs[3]/ocr"); ok {
		t.Error("a step path taken for a child path")
	}
	step := StepPath(child, "ocr")
	if inst, name := SplitStep(step); inst != child || name != "ocr" {
		t.Errorf("SplitStep(%q) = %q %q", step, inst, name)
	}
	if inst, name := SplitStep("ocr"); inst != "" || name != "ocr" {
		t.Errorf("SplitStep(ocr) = %q %q", inst, name)
	}
	if !IsProgress("docs[3]/pages") || IsProgress(child) || IsProgress("") {
		t.Error("IsProgress")
	}
	for in, want := range map[string]string{"ocr": "ocr", "docs[1]/pages[7]/ocr": "docs/pages/ocr", "docs[12]": "docs"} {
		if got := Node(in); got != want {
			t.Errorf("Node(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCompare(t *testing.T) {
	paths := []string{"docs[10]", "docs[2]/pages[1]", "docs[2]", "docs[2]/pages[10]", "docs[2]/pages[9]", "a[1]"}
	want := []string{"a[1]", "docs[2]", "docs[2]/pages[1]", "docs[2]/pages[9]", "docs[2]/pages[10]", "docs[10]"}
	slices.SortFunc(paths, Compare)
	if !slices.Equal(paths, want) {
		t.Errorf("sorted %v, want %v", paths, want)
	}
}

// FuzzRoundTrip: a key built from any request id and any path of children
// and steps parses back to them, and every key Parse accepts formats back
// to itself.
func FuzzRoundTrip(f *testing.F) {
	f.Add("r-1", "docs", uint16(3), "pages", uint16(0), "ocr", uint8(3))
	f.Add("a.b:c", "x", uint16(0), "y_z", uint16(12), "fan", uint8(1))
	f.Add("r", "a", uint16(0), "b", uint16(0), "c", uint8(0))
	f.Fuzz(func(t *testing.T, request, a string, i uint16, b string, j uint16, step string, shape uint8) {
		if !valid(request) || !valid(a) || !valid(b) || !valid(step) {
			return
		}
		// shape picks what the key names: the request, a child, a
		// nested child, or the progress of a fan-out step under one.
		path := ""
		switch shape % 4 {
		case 1:
			path = ChildPath("", a, int(i))
		case 2:
			path = ChildPath(ChildPath("", a, int(i)), b, int(j))
		case 3:
			path = StepPath(ChildPath("", a, int(i)), step)
		}
		key := Format(request, path)
		r, p, err := Parse(key)
		if err != nil || r != request || p != path {
			t.Fatalf("Parse(Format(%q, %q)) = %q, %q, %v", request, path, r, p, err)
		}
		if shape%4 == 2 {
			parent, s, n, ok := ParentOf(p)
			if !ok || parent != ChildPath("", a, int(i)) || s != b || n != int(j) {
				t.Fatalf("ParentOf(%q) = %q %q %d %v", p, parent, s, n, ok)
			}
		}
	})
}

// FuzzParse: whatever Parse accepts formats back to the same key.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"r-1", "r-1/docs[0]", "r-1/docs[1]/pages", "r/a[0]/b[01]", "r//"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		r, p, err := Parse(key)
		if err != nil {
			return
		}
		if got := Format(r, p); got != key {
			t.Fatalf("Format(Parse(%q)) = %q", key, got)
		}
	})
}

// valid: request ids and step names never hold the separators.
func valid(s string) bool { return s != "" && !strings.ContainsAny(s, "/[]") }
