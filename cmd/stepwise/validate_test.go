package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateFiles(t *testing.T) {
	good := "../../examples/word-counts/workflows.yaml"
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("workflows:\n  - name: w\n    steps:\n      - name: a\n        dependz: [b]\n      - name: c\n        depends: [nope]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errs bytes.Buffer
	if !validateFiles(&out, &errs, []string{good}) {
		t.Fatalf("the word-counts example failed validation: %s", errs.String())
	}
	if !strings.Contains(out.String(), "workflows.yaml: OK (1 workflow") {
		t.Fatalf("stdout = %q", out.String())
	}
	out.Reset()
	if validateFiles(&out, &errs, []string{good, bad}) {
		t.Fatal("a file with errors passed")
	}
	// Every problem, each with file, line and field path.
	for _, want := range []string{
		bad + `:5:9: workflows[0].steps[0].dependz: unknown field "dependz"; did you mean "depends"?`,
		bad + `:7:19: workflows[0].steps[1].depends: unknown step "nope"`,
	} {
		if !strings.Contains(errs.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs.String())
		}
	}
}
