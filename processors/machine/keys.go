package machine

import (
	"strconv"
	"strings"
)

// RecordKey returns the state key of the instance at path of a request:
// the request id itself for the root (path ""), else "<request>/<path>".
func RecordKey(request, path string) string {
	if path == "" {
		return request
	}
	return request + "/" + path
}

// StepPath returns the path of a step of the instance at instPath.
func StepPath(instPath, step string) string {
	if instPath == "" {
		return step
	}
	return instPath + "/" + step
}

// childPath returns the path of child i of fan-out step of the instance at
// instPath: "docs[3]" or "docs[3]/pages[0]".
func childPath(instPath, step string, i int) string {
	return StepPath(instPath, step+"["+strconv.Itoa(i)+"]")
}

// splitStepPath splits "docs[3]/pages[0]/ocr" into the instance path
// "docs[3]/pages[0]" and the step name "ocr".
func splitStepPath(p string) (instPath, step string) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "", p
	}
	return p[:i], p[i+1:]
}

// parentOf splits a child path "docs[3]/pages[0]" into the parent instance
// path "docs[3]", the fan-out step "pages" and the index 0.
func parentOf(childPath string) (parent, step string, index int, ok bool) {
	parent, seg := splitStepPath(childPath)
	open := strings.LastIndexByte(seg, '[')
	if open <= 0 || !strings.HasSuffix(seg, "]") {
		return "", "", 0, false
	}
	n, err := strconv.Atoi(seg[open+1 : len(seg)-1])
	if err != nil || n < 0 {
		return "", "", 0, false
	}
	return parent, seg[:open], n, true
}
