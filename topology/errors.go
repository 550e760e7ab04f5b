package topology

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrInvalid is matched (errors.Is) by every ValidationErrors: the
// definitions were read but do not describe valid workflows. Fix the
// problems listed and load again.
var ErrInvalid = errors.New("stepwise: invalid workflow definition")

// FieldError is one problem of a definition file, located by position and
// by field path, e.g. "workflows[0].steps[2].depends".
type FieldError struct {
	File   string
	Line   int // 1-based; 0 when the problem has no position (empty file)
	Column int // 1-based
	Path   string
	Msg    string
}

// Error formats the problem as "file:line:col: path: msg", the form editors
// and terminals turn into a link.
func (e *FieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Column)
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ValidationErrors is every problem found in one load, sorted by file (in
// the order the files were given) and position. It is never empty when
// returned as an error.
type ValidationErrors []*FieldError

// Error lists the problems, one per line.
func (ve ValidationErrors) Error() string {
	lines := make([]string, len(ve))
	for i, e := range ve {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Is makes errors.Is(err, ErrInvalid) true.
func (ve ValidationErrors) Is(target error) bool { return target == ErrInvalid }

// Unwrap exposes each FieldError to errors.As.
func (ve ValidationErrors) Unwrap() []error {
	out := make([]error, len(ve))
	for i, e := range ve {
		out[i] = e
	}
	return out
}

// sortByPosition orders the problems of one file by line, column, then
// path and message so that equal positions still print deterministically.
func (ve ValidationErrors) sortByPosition() {
	slices.SortStableFunc(ve, func(a, b *FieldError) int {
		return cmp.Or(
			cmp.Compare(a.Line, b.Line),
			cmp.Compare(a.Column, b.Column),
			cmp.Compare(a.Path, b.Path),
			cmp.Compare(a.Msg, b.Msg),
		)
	})
}

// pos is a position in a file, taken from a yaml.Node.
type pos struct{ line, col int }

// errorList collects the problems of one file.
type errorList struct {
	file string
	errs ValidationErrors
}

func (l *errorList) add(at pos, path, format string, args ...any) {
	l.errs = append(l.errs, &FieldError{
		File: l.file, Line: at.line, Column: at.col, Path: path,
		Msg: fmt.Sprintf(format, args...),
	})
}
