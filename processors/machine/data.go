package machine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
)

// object is a decoded JSON object whose values stay raw.
type object = map[string]json.RawMessage

var emptyObject = json.RawMessage(`{}`)

// checkObject reports why b is not a JSON object of at most max bytes, or
// nil when it is one.
func checkObject(b []byte, max int) error {
	if len(b) > max {
		return fmt.Errorf("%d bytes, over the %d-byte limit", len(b), max)
	}
	t := bytes.TrimLeft(b, " \t\r\n")
	if len(t) == 0 || t[0] != '{' {
		if !json.Valid(b) {
			return fmt.Errorf("not valid JSON")
		}
		return fmt.Errorf("not a JSON object")
	}
	if !json.Valid(b) {
		// Name the position so a worker's author can find the fault.
		var o object
		err := json.Unmarshal(b, &o)
		return fmt.Errorf("not valid JSON: %v", err)
	}
	return nil
}

// decodeObject decodes a payload that checkObject accepted earlier. A value
// that is not an object decodes as empty, as the original manager ignored
// such outputs when merging.
func decodeObject(b []byte) object {
	var o object
	if len(b) == 0 || json.Unmarshal(b, &o) != nil {
		return object{}
	}
	return o
}

func encodeObject(o object) json.RawMessage {
	b, err := json.Marshal(o)
	if err != nil {
		// Values are raw JSON that was validated when it arrived.
		panic(fmt.Sprintf("stepwise: encode object: %v", err))
	}
	return b
}

// merge combines JSON objects; a key keeps the value of the first object
// that has it. One object passes through unchanged.
func merge(parts []json.RawMessage) json.RawMessage {
	if len(parts) == 1 && len(parts[0]) > 0 {
		return parts[0]
	}
	out := object{}
	for _, p := range parts {
		for k, v := range decodeObject(p) {
			if _, seen := out[k]; !seen {
				out[k] = v
			}
		}
	}
	return encodeObject(out)
}

// describeJSON names the kind of a JSON value for error messages, with a
// short quote of it: `a number (5)`, `null`.
func describeJSON(raw json.RawMessage) string {
	t := bytes.TrimSpace(raw)
	quote := string(t)
	if len(quote) > 40 {
		quote = quote[:37] + "..."
	}
	switch {
	case len(t) == 0:
		return "nothing"
	case t[0] == '{':
		return "an object " + quote
	case t[0] == '"':
		return "a string " + quote
	case t[0] == 't' || t[0] == 'f':
		return "a boolean " + quote
	case t[0] == 'n':
		return "null"
	case t[0] == '[':
		return "an unreadable list " + quote
	}
	return "a number " + quote
}

var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// elementID returns the UUID "id" of a list element that is an object with
// one, or "".
func elementID(elem json.RawMessage) string {
	t := bytes.TrimLeft(elem, " \t\r\n")
	if len(t) == 0 || t[0] != '{' {
		return ""
	}
	var v struct {
		ID any `json:"id"`
	}
	if json.Unmarshal(elem, &v) != nil {
		return ""
	}
	s, ok := v.ID.(string)
	if !ok || !uuidPattern.MatchString(s) {
		return ""
	}
	return s
}
