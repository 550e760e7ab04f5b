// Package statekey is the grammar of the keys of the state topic and of the
// step paths inside them. The processors write keys by it, and the view,
// `stepwise get` and the HTTP API read them by it; nothing else builds or
// splits a key.
//
// # Grammar
//
//	key       = request [ "/" path ]
//	path      = instance | progress
//	instance  = child *( "/" child )          docs[1]/pages[7]
//	child     = step "[" index "]"            index: decimal, no leading zeros
//	progress  = [ instance "/" ] step         docs[1]/pages
//	step path = [ instance "/" ] step         docs[1]/pages[7]/ocr
//
// The key of a request's own record is its id; a fan-out child's is
// "<request>/<instance path>"; the progress record of a running fan-out step
// is "<request>/<step path of the fan-out step>". Request ids and step names
// never contain "/", "[" or "]" (schemas.RequestIDPattern,
// topology.NamePattern), which is what makes the grammar unambiguous.
//
// A DAG node ID is a step path without its indexes (Node): the key of a
// step's progress summed over every instance.
package statekey

import (
	"cmp"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrKey is wrapped by the error of a key that does not follow the grammar.
var ErrKey = errors.New("stepwise: invalid state key")

// Format returns the state key of the record at path of request: the
// request id itself for the request's own record (path ""), else
// "<request>/<path>".
func Format(request, path string) string {
	if path == "" {
		return request
	}
	return request + "/" + path
}

// Parse splits a state key into the request id and the path ("" for the
// request's own record), checking the key against the grammar.
func Parse(key string) (request, path string, err error) {
	request, path, _ = strings.Cut(key, "/")
	if request == "" || strings.ContainsAny(request, "[]") {
		return "", "", fmt.Errorf("%w %q: no request id", ErrKey, key)
	}
	if path == "" {
		if strings.HasSuffix(key, "/") {
			return "", "", fmt.Errorf("%w %q: empty path", ErrKey, key)
		}
		return request, "", nil
	}
	segs := strings.Split(path, "/")
	for i, seg := range segs {
		name, index, indexed := splitChild(seg)
		switch {
		case name == "" || strings.ContainsAny(name, "[]"):
			return "", "", fmt.Errorf("%w %q: bad segment %q", ErrKey, key, seg)
		case indexed && index < 0:
			return "", "", fmt.Errorf("%w %q: bad index in %q", ErrKey, key, seg)
		case !indexed && i < len(segs)-1:
			return "", "", fmt.Errorf("%w %q: %q is not a child (step[i])", ErrKey, key, seg)
		}
	}
	return request, path, nil
}

// StepPath returns the path of step of the instance at instance ("" for
// the request itself). It also joins DAG node IDs.
func StepPath(instance, step string) string {
	if instance == "" {
		return step
	}
	return instance + "/" + step
}

// ChildPath returns the path of child i of the fan-out step of the
// instance at instance: "docs[3]" or "docs[3]/pages[0]".
func ChildPath(instance, step string, i int) string {
	return StepPath(instance, step+"["+strconv.Itoa(i)+"]")
}

// SplitStep splits a step path "docs[3]/pages[0]/ocr" into the instance
// path "docs[3]/pages[0]" and the step name "ocr"; a top-level step has
// instance "".
func SplitStep(path string) (instance, step string) {
	i := strings.LastIndexByte(path, '/')
	if i < 0 {
		return "", path
	}
	return path[:i], path[i+1:]
}

// ParentOf splits a child path "docs[3]/pages[0]" into the parent instance
// path "docs[3]", the fan-out step "pages" and the index 0; ok is false
// when path is not a child path.
func ParentOf(path string) (parent, step string, index int, ok bool) {
	parent, seg := SplitStep(path)
	name, index, indexed := splitChild(seg)
	if !indexed || index < 0 || name == "" {
		return "", "", 0, false
	}
	return parent, name, index, true
}

// IsProgress reports whether the path of a state key names the progress
// record of a fan-out step rather than a child instance: child paths end
// in "[i]".
func IsProgress(path string) bool { return path != "" && !strings.HasSuffix(path, "]") }

// Node returns the DAG node ID of a step or child path: the path without
// its indexes ("documents[1]/pages[7]/ocr" => "documents/pages/ocr").
func Node(path string) string {
	if !strings.Contains(path, "[") {
		return path
	}
	var b strings.Builder
	skip := false
	for _, c := range path {
		switch {
		case c == '[':
			skip = true
		case c == ']':
			skip = false
		case !skip:
			b.WriteRune(c)
		}
	}
	return b.String()
}

// Compare orders paths with their indexes compared as numbers ("docs[2]"
// before "docs[10]").
func Compare(a, b string) int {
	for a != "" && b != "" {
		ia, ib := strings.IndexByte(a, '['), strings.IndexByte(b, '[')
		if ia < 0 || ib < 0 || a[:ia] != b[:ib] {
			return strings.Compare(a, b)
		}
		a, b = a[ia+1:], b[ib+1:]
		ja, jb := strings.IndexByte(a, ']'), strings.IndexByte(b, ']')
		if ja < 0 || jb < 0 {
			return strings.Compare(a, b)
		}
		na, _ := strconv.Atoi(a[:ja])
		nb, _ := strconv.Atoi(b[:jb])
		if c := cmp.Compare(na, nb); c != 0 {
			return c
		}
		a, b = a[ja+1:], b[jb+1:]
	}
	return strings.Compare(a, b)
}

// splitChild splits "pages[7]" into "pages", 7 and true; a segment without
// an index gives (seg, 0, false), a malformed index (not decimal, leading
// zeros, sign) an index of -1.
func splitChild(seg string) (name string, index int, indexed bool) {
	open := strings.IndexByte(seg, '[')
	if open < 0 {
		return seg, 0, false
	}
	if !strings.HasSuffix(seg, "]") {
		return seg, -1, true
	}
	digits := seg[open+1 : len(seg)-1]
	n, err := strconv.Atoi(digits)
	if err != nil || n < 0 || strconv.Itoa(n) != digits {
		return seg[:open], -1, true
	}
	return seg[:open], n, true
}
