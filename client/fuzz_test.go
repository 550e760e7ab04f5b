package client

import (
	"encoding/json"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var positionPattern = regexp.MustCompile(`line (\d+), column (\d+)`)

// FuzzValidateInput checks the start input check on arbitrary bytes: it
// accepts exactly the JSON objects, and a syntax error points inside the
// input (or just past its end when it was cut short).
func FuzzValidateInput(f *testing.F) {
	for _, s := range []string{`{}`, `{"a": [1, {"b": null}]}`, "{\n \"a\": 1,\n}", `{"a":`, `[1]`, `null`, `"x"`, ` {} `, `{} {}`, "\xff", ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		err := ValidateInput(in)
		var obj map[string]json.RawMessage
		isObject := json.Unmarshal(in, &obj) == nil && obj != nil
		if (err == nil) != isObject {
			t.Fatalf("ValidateInput(%q) = %v; a JSON object: %v", in, err, isObject)
		}
		if err == nil {
			return
		}
		if !errors.Is(err, ErrInvalidInput) {
			t.Fatalf("ValidateInput(%q) = %v, not wrapping ErrInvalidInput", in, err)
		}
		if m := positionPattern.FindStringSubmatch(err.Error()); m != nil {
			line, _ := strconv.Atoi(m[1])
			col, _ := strconv.Atoi(m[2])
			lines := strings.Split(string(in), "\n")
			if line < 1 || line > len(lines) || col < 1 || col > len(lines[line-1])+1 {
				t.Fatalf("ValidateInput(%q): position %d:%d is outside its %d lines", in, line, col, len(lines))
			}
		}
	})
}
