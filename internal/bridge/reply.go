package bridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// CorrelationID is the AMQP correlation id of a task, in the original
// manager's format "<id>:<step name>": id is the graph instance (the
// request id, or the fan-out child's id) and the step name is the last
// segment of the step path ("ocr" for "docs[1]/pages[7]/ocr"). Workers of
// the original manager take the part before the first ":" as the job id.
func CorrelationID(instance, stepPath string) string {
	return instance + ":" + stepPath[strings.LastIndexByte(stepPath, '/')+1:]
}

// errBadReply is wrapped by every error decodeReply returns.
var errBadReply = errors.New("stepwise bridge: unusable reply")

// decodeReply turns the body of an AMQP reply into a step output:
//
//   - an empty body, or JSON null, is an empty output {}: the original
//     dispatchers send it when a handler returns nothing, and the original
//     manager took it as success;
//   - a JSON object is the output;
//   - anything else (not JSON, an array, a string, a number) is an error:
//     the attempt fails, retryably, with the reason.
//
// empty reports the first case, which is counted apart.
func decodeReply(body []byte) (out json.RawMessage, empty bool, err error) {
	t := bytes.TrimSpace(body)
	switch {
	case len(t) == 0 || string(t) == "null":
		return json.RawMessage("{}"), true, nil
	case !json.Valid(t):
		return nil, false, fmt.Errorf("%w: the body is not JSON (%d bytes, starting %q)", errBadReply, len(body), prefix(body, 32))
	case t[0] != '{':
		return nil, false, fmt.Errorf("%w: the body is a JSON %s, not an object", errBadReply, jsonKind(t[0]))
	}
	return json.RawMessage(t), false, nil
}

func prefix(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n])
	}
	return string(b)
}

func jsonKind(first byte) string {
	switch first {
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	default:
		return "number"
	}
}
