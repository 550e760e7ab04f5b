// Package schematest checks messages against the protocol's JSON Schemas
// (package schemas) in tests. It sits beside the data flow: the tests of
// every Go producer — client, processors, worker SDK, bench driver — hand
// it what they wrote, so a producer that drifts from the protocol fails its
// own package's tests.
package schematest

import (
	"bytes"
	"io/fs"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/stepwise-run/stepwise/schemas"
)

// Base is the $id prefix of every schema file.
const Base = "https://stepwise.run/schemas/"

// Compiler loads every schema file of schemas.FS under its $id, with
// format assertions on so date-time fields are checked too.
func Compiler(t testing.TB) *jsonschema.Compiler {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	names, err := fs.Glob(schemas.FS, "*.schema.json")
	if err != nil || len(names) == 0 {
		t.Fatalf("no schema files embedded: %v", err)
	}
	for _, n := range names {
		b, _ := schemas.FS.ReadFile(n)
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if id, _ := doc.(map[string]any)["$id"].(string); id != Base+n {
			t.Fatalf("%s: $id is %q, want %q", n, id, Base+n)
		}
		if err := c.AddResource(Base+n, doc); err != nil {
			t.Fatalf("%s: %v", n, err)
		}
	}
	return c
}

// Compile returns the schema of file name ("start.schema.json") from c.
func Compile(t testing.TB, c *jsonschema.Compiler, name string) *jsonschema.Schema {
	t.Helper()
	s, err := c.Compile(Base + name)
	if err != nil {
		t.Fatalf("compile %s: %v", name, err)
	}
	return s
}

// Instance parses raw JSON for validation.
func Instance(t testing.TB, raw string) any {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(raw))
	if err != nil {
		t.Fatalf("not JSON: %v\n%s", err, raw)
	}
	return v
}

var (
	shared     *jsonschema.Compiler
	sharedOnce sync.Once
	sharedMu   sync.Mutex
)

// Valid fails t unless value validates against the schema of file name.
func Valid(t testing.TB, name string, value []byte) {
	t.Helper()
	sharedOnce.Do(func() { shared = Compiler(t) })
	sharedMu.Lock()
	s := Compile(t, shared, name)
	sharedMu.Unlock()
	if err := s.Validate(Instance(t, string(value))); err != nil {
		t.Errorf("%s rejects what was written: %v\n%s", name, err, value)
	}
}

// ValidHeaders fails t unless the Stepwise headers of a record, as a map
// from name to value, validate against the header set kind ("task" or
// "result") of headers.schema.json.
func ValidHeaders(t testing.TB, kind string, headers map[string]string) {
	t.Helper()
	obj := make(map[string]any, len(headers))
	for k, v := range headers {
		obj[k] = v
	}
	sharedOnce.Do(func() { shared = Compiler(t) })
	sharedMu.Lock()
	s := Compile(t, shared, "headers.schema.json#/$defs/"+kind)
	sharedMu.Unlock()
	if err := s.Validate(obj); err != nil {
		t.Errorf("headers.schema.json (%s) rejects what was written: %v\n%v", kind, err, headers)
	}
}
