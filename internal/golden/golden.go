// Package golden keeps the answers of the Go example handlers in a JSON
// file that workers in other languages are checked against (their tests
// read the same file). A test compares what the Go handlers answer today
// with the file, or rewrites the file when run with -update.
package golden

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// Check compares cases (a slice whose elements have a "name" field once
// encoded) with the JSON file at path, or writes them there when update is
// set.
func Check(t testing.TB, path string, cases any, update bool) {
	t.Helper()
	b, err := json.MarshalIndent(cases, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	var got, want []map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("cases are not a list of objects: %v", err)
	}
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v; run the test with -update", err)
	}
	if err := json.Unmarshal(file, &want); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(want) != len(got) {
		t.Fatalf("%s has %d cases, the Go handlers give %d; run with -update", path, len(want), len(got))
	}
	for i := range got {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("case %d (%v): the Go handlers' answer differs from %s; run with -update if the change is intended", i, got[i]["name"], path)
		}
	}
}
