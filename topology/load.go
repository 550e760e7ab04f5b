package topology

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Parse reads the definitions of one file. file names the data in
// messages only. Every problem found is reported at once, as
// ValidationErrors sorted by position (the rules are listed on validate);
// on success the returned Set is compiled and satisfies Set.Validate.
func Parse(file string, data []byte) (*Set, error) {
	spec, errs := parseSpec(file, data)
	if len(errs) > 0 {
		return nil, errs
	}
	return compile([]*fileSpec{spec}), nil
}

// Load reads and merges the definitions of several files, in order. A
// workflow name defined in two files is an error, like one defined twice in
// the same file. Problems of every file are reported together, file by
// file in the order given. A file that cannot be read is reported as such,
// not as ValidationErrors.
func Load(files ...string) (*Set, error) {
	if len(files) == 0 {
		return nil, errors.New("stepwise: no definition files given")
	}
	specs := make([]*fileSpec, 0, len(files))
	var all ValidationErrors
	type origin struct {
		index int // of the file in files
		where string
	}
	first := map[string]origin{} // by compiled workflow name
	for i, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("stepwise: read definitions: %w", err)
		}
		spec, errs := parseSpec(file, data)
		// Names across files are checked even when a file has other
		// problems, so one run shows everything that must be fixed.
		l := errorList{file: file, errs: errs}
		for _, w := range spec.workflows {
			for _, name := range w.compiledNames() {
				if name == "" {
					continue
				}
				if prev, dup := first[name]; dup {
					// Repeats inside one file are the validator's.
					if prev.index != i {
						l.add(w.name.at, w.path+".name", "duplicate workflow %q (first defined at %s)", name, prev.where)
					}
					continue
				}
				first[name] = origin{i, fmt.Sprintf("%s:%d:%d", file, w.name.at.line, w.name.at.col)}
			}
		}
		l.errs.sortByPosition()
		all = append(all, l.errs...)
		specs = append(specs, spec)
	}
	if len(all) > 0 {
		return nil, all
	}
	return compile(specs), nil
}

// parseSpec loads and validates one file. The spec is returned even when
// there are problems (as far as it could be read).
func parseSpec(file string, data []byte) (*fileSpec, ValidationErrors) {
	l := &loader{errorList: errorList{file: file}, budget: maxNodes}
	spec := l.document(data)
	if !l.exhausted {
		validate(spec, &l.errorList)
	}
	l.errs.sortByPosition()
	if len(l.errs) == 0 {
		spec.canonical = canonicalWorkflows(data)
	}
	return spec, l.errs
}

// canonicalWorkflows re-writes each entry of a valid file's workflows list
// as a file of its own, in a canonical form: keys sorted, comments dropped,
// anchors, aliases and merge keys resolved. Editing a comment or the order
// of keys leaves it unchanged; that is what a definition's content hash is
// taken of.
func canonicalWorkflows(data []byte) [][]byte {
	var doc struct {
		Workflows []any `yaml:"workflows"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil // the loader read it: cannot happen
	}
	out := make([][]byte, len(doc.Workflows))
	for i, w := range doc.Workflows {
		b, err := yaml.Marshal(map[string]any{"workflows": []any{w}})
		if err == nil {
			out[i] = b
		}
	}
	return out
}

// Keys lists the keys each kind of mapping of a definition file may hold,
// by the kind's name in the YAML reference (docs/yaml-reference.md, which
// TestYAMLReference keeps in step with this): the loader reports any other
// key as unknown.
var Keys = map[string][]string{
	"file":     {"workflows"},
	"workflow": {"name", "vhosts", "steps", "tasks", "defaults", "retention", "output", "onFailure"},
	"defaults": {"retry", "timeout"},
	"task":     {"name", "itemListKey", "steps"},
	"step":     {"name", "depends", "task", "queue", "retry", "timeout", "wait", "when", "input", "continueOnFailure", "tolerate"},
	"queue":    {"name", "transport"},
	"retry":    {"maxAttempts", "initial", "max", "multiplier"},
	"tolerate": {"failures"},
}

// maxNodes bounds the work of walking one document. YAML aliases let a
// small file reference the same subtree many times; walking it once per
// reference could otherwise take exponential time.
const maxNodes = 1 << 20

// loader walks the yaml.Node tree of one document into a fileSpec. It
// checks structure and scalar syntax (kinds, unknown keys, durations,
// numbers); meaning is left to the validator.
type loader struct {
	errorList
	budget    int
	exhausted bool
}

func at(n *yaml.Node) pos { return pos{n.Line, n.Column} }

func (l *loader) document(data []byte) *fileSpec {
	spec := &fileSpec{file: l.file, workflowsAt: pos{1, 1}}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			l.add(pos{}, "", "empty file: expected a top-level \"workflows:\" list")
		} else {
			l.syntaxError(err)
		}
		spec.unreadable = true
		return spec
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		l.add(at(&extra), "", "more than one YAML document: put every workflow in one \"workflows:\" list")
	} else if !errors.Is(err, io.EOF) {
		l.syntaxError(err)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			l.add(pos{}, "", "empty file: expected a top-level \"workflows:\" list")
			spec.unreadable = true
			return spec
		}
		root = root.Content[0]
	}
	root = l.resolve(root)
	if root == nil {
		return spec
	}
	if isNull(root) {
		l.add(at(root), "", "empty file: expected a top-level \"workflows:\" list")
		spec.unreadable = true
		return spec
	}
	if root.Kind != yaml.MappingNode {
		l.add(at(root), "", "expected a mapping with a top-level \"workflows:\" list, got %s", kindName(root))
		spec.unreadable = true
		return spec
	}
	spec.workflowsAt = at(root)
	found, before := false, len(l.errs)
	fields, _ := l.fields(root, "", Keys["file"]...)
	for _, f := range fields {
		found = true
		spec.workflowsAt = at(f.key)
		for i, item := range l.list(f.val, "workflows") {
			spec.workflows = append(spec.workflows, l.workflow(item, fmt.Sprintf("workflows[%d]", i)))
		}
	}
	if !found {
		if len(l.errs) == before { // else the unknown keys said it
			l.add(at(root), "", "no \"workflows:\" list")
		}
		spec.unreadable = true
	}
	return spec
}

// syntaxError turns a yaml.v3 error ("yaml: line 3: did not find ...") into
// a positioned FieldError.
func (l *loader) syntaxError(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, tail, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil {
				line, msg = n, tail
			}
		}
	}
	col := 0
	if line > 0 {
		col = 1
	}
	l.add(pos{line, col}, "", "invalid YAML: %s", msg)
}

func (l *loader) workflow(n *yaml.Node, path string) *workflowSpec {
	w := &workflowSpec{path: path, at: at(n), stepsAt: at(n)}
	w.name.at = at(n)
	fields, ok := l.fields(n, path, Keys["workflow"]...)
	w.bad = !ok
	for _, f := range fields {
		p := path + "." + f.name
		switch f.name {
		case "name":
			w.name = l.str(f.val, p)
		case "vhosts":
			w.vhosts = l.strs(f.val, p)
		case "steps":
			w.stepsAt = at(f.key)
			w.steps = l.steps(f.val, p)
		case "tasks":
			for i, item := range l.list(f.val, p) {
				w.tasks = append(w.tasks, l.task(item, fmt.Sprintf("%s[%d]", p, i)))
			}
		case "defaults":
			w.defaults = l.defaults(f.val, p)
		case "retention":
			w.retention = l.duration(f.val, p)
		case "deadline":
			w.deadline = l.duration(f.val, p)
		case "output":
			w.output = l.mapping(f.val, p)
		case "onFailure":
			w.onFailure = l.str(f.val, p)
		}
	}
	return w
}

func (l *loader) defaults(n *yaml.Node, path string) *defaultsSpec {
	d := &defaultsSpec{path: path}
	fields, _ := l.fields(n, path, Keys["defaults"]...)
	for _, f := range fields {
		p := path + "." + f.name
		switch f.name {
		case "retry":
			d.retry = l.retry(f.val, p)
		case "timeout":
			d.timeout = l.duration(f.val, p)
		}
	}
	return d
}

func (l *loader) task(n *yaml.Node, path string) *taskSpec {
	t := &taskSpec{path: path, at: at(n), stepsAt: at(n)}
	t.name.at, t.itemListKey.at = at(n), at(n)
	fields, ok := l.fields(n, path, Keys["task"]...)
	t.bad = !ok
	for _, f := range fields {
		p := path + "." + f.name
		switch f.name {
		case "name":
			t.name = l.str(f.val, p)
		case "itemListKey":
			t.itemListKey = l.str(f.val, p)
			if !t.itemListKey.set {
				t.itemListKey.at = at(f.key)
			}
		case "steps":
			t.stepsAt = at(f.key)
			t.steps = l.steps(f.val, p)
		}
	}
	return t
}

// steps reads a list of steps; each is reported under path[i].
func (l *loader) steps(n *yaml.Node, path string) []*stepSpec {
	var out []*stepSpec
	for i, item := range l.list(n, path) {
		out = append(out, l.step(item, fmt.Sprintf("%s[%d]", path, i)))
	}
	return out
}

func (l *loader) step(n *yaml.Node, path string) *stepSpec {
	s := &stepSpec{path: path, at: at(n)}
	s.name.at = at(n)
	fields, ok := l.fields(n, path, Keys["step"]...)
	s.bad = !ok
	for _, f := range fields {
		p := path + "." + f.name
		switch f.name {
		case "name":
			s.name = l.str(f.val, p)
		case "depends":
			s.depends = l.strs(f.val, p)
		case "task":
			s.task = l.str(f.val, p)
		case "queue":
			l.queue(s, f.val, p)
		case "retry":
			s.retry = l.retry(f.val, p)
		case "timeout":
			s.timeout = l.duration(f.val, p)
		case "wait":
			s.wait = l.wait(f.val, p)
		case "sleep":
			s.sleep = l.duration(f.val, p)
		case "heartbeatTimeout":
			s.heartbeat = l.duration(f.val, p)
		case "when":
			s.when = l.expr(f.val, p)
			s.when.str = exprDefault(s.when.str, at(f.key))
		case "input":
			s.input = l.mapping(f.val, p)
		case "continueOnFailure":
			s.continueOnFailure = l.boolean(f.val, p)
		case "tolerate":
			s.tolerate = l.tolerate(f.val, p)
		}
	}
	return s
}

// queue reads a step's queue: a name ("queue: ocr") or a mapping
// ("queue: {name: ocr, transport: amqp}") whose name defaults to the
// step's name.
func (l *loader) queue(s *stepSpec, n *yaml.Node, path string) {
	r := l.resolve(n)
	if r == nil || r.Kind != yaml.MappingNode {
		s.queue = l.str(n, path)
		return
	}
	fields, _ := l.fields(r, path, Keys["queue"]...)
	for _, f := range fields {
		switch f.name {
		case "name":
			s.queue = l.str(f.val, path+".name")
		case "transport":
			s.transport = l.str(f.val, path+".transport")
		}
	}
	if !s.queue.set {
		s.queue.at = at(r)
	}
	if !s.transport.set {
		s.transport.at = at(r)
	}
}

func (l *loader) retry(n *yaml.Node, path string) *retrySpec {
	r := &retrySpec{path: path, at: at(n)}
	fields, _ := l.fields(n, path, Keys["retry"]...)
	for _, f := range fields {
		p := path + "." + f.name
		switch f.name {
		case "maxAttempts":
			v := l.scalar(f.val, p)
			if v == nil {
				continue
			}
			i, err := strconv.Atoi(v.Value)
			if err != nil {
				l.add(at(v), p, "must be a whole number, got %q", v.Value)
				continue
			}
			r.maxAttempts.val, r.maxAttempts.at, r.maxAttempts.set = i, at(v), true
		case "initial":
			r.initial = l.duration(f.val, p)
		case "max":
			r.max = l.duration(f.val, p)
		case "multiplier":
			v := l.scalar(f.val, p)
			if v == nil {
				continue
			}
			x, err := strconv.ParseFloat(v.Value, 64)
			if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
				l.add(at(v), p, "must be a number, got %q", v.Value)
				continue
			}
			r.multiplier.val, r.multiplier.at, r.multiplier.set = x, at(v), true
		}
	}
	return r
}

func (l *loader) duration(n *yaml.Node, path string) duration {
	v := l.scalar(n, path)
	if v == nil {
		return duration{}
	}
	d, err := ParseDuration(v.Value)
	if err != nil {
		hint := ""
		if _, numErr := strconv.ParseFloat(v.Value, 64); numErr == nil {
			hint = " (a unit is required, e.g. 30s, 500ms, 2m)"
		}
		l.add(at(v), path, "invalid duration %q%s", v.Value, hint)
		return duration{}
	}
	return duration{val: d, at: at(v), set: true}
}

// ParseDuration reads a duration as time.ParseDuration does, and also
// whole days with a "d" unit before any other: "7d", "1d12h".
func ParseDuration(s string) (time.Duration, error) {
	days, rest, ok := strings.Cut(s, "d")
	if !ok {
		return time.ParseDuration(s)
	}
	n, err := strconv.Atoi(days)
	if err != nil || n < 0 || n > 100000 {
		return 0, fmt.Errorf("invalid duration %q: days must be a whole number before \"d\"", s)
	}
	d := time.Duration(n) * 24 * time.Hour
	if rest == "" {
		return d, nil
	}
	r, err := time.ParseDuration(rest)
	if err != nil || r < 0 {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	return d + r, nil
}

// str reads a string field. Any non-null scalar is taken as written, as
// YAML decoders into Go strings do (so "name: true" is the name "true").
// strs reads a list of strings, reporting entries under path itself (the
// position points at the entry), and keeps the ones that are set.
func (l *loader) strs(n *yaml.Node, path string) []str {
	var out []str
	for _, item := range l.list(n, path) {
		if v := l.str(item, path); v.set {
			out = append(out, v)
		}
	}
	return out
}

func (l *loader) str(n *yaml.Node, path string) str {
	v := l.scalar(n, path)
	if v == nil {
		r := l.resolve(n)
		return str{at: at(n), bad: r != nil && !isNull(r)}
	}
	return str{val: v.Value, at: at(v), set: true}
}

// scalar returns the scalar behind n, or nil when n is null (nothing to
// read) or not a scalar (reported).
func (l *loader) scalar(n *yaml.Node, path string) *yaml.Node {
	n = l.resolve(n)
	if n == nil || isNull(n) {
		return nil
	}
	if n.Kind != yaml.ScalarNode {
		l.add(at(n), path, "must be a single value, got %s", kindName(n))
		return nil
	}
	return n
}

// list returns the items of a sequence; null is the empty list.
func (l *loader) list(n *yaml.Node, path string) []*yaml.Node {
	n = l.resolve(n)
	if n == nil || isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		l.add(at(n), path, "must be a list, got %s (write [a, b] or one \"- a\" line per item)", kindName(n))
		return nil
	}
	return n.Content
}

type field struct {
	name     string
	key, val *yaml.Node
}

// fields returns the known fields of a mapping, in file order, with merge
// keys ("<<: *anchor") expanded; keys written in the mapping itself win over
// merged ones. Unknown and repeated keys are reported. A null mapping has no
// fields. ok is false when n is not a mapping (reported).
func (l *loader) fields(n *yaml.Node, path string, known ...string) (out []field, ok bool) {
	n = l.resolve(n)
	if n == nil || isNull(n) {
		return nil, true
	}
	if n.Kind != yaml.MappingNode {
		l.add(at(n), path, "must be a mapping of fields, got %s", kindName(n))
		return nil, false
	}
	seen := map[string]bool{}
	var merged []field
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := l.resolve(n.Content[i]), n.Content[i+1]
		if k == nil {
			return out, true
		}
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merged = append(merged, l.mergeSources(v, path)...)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			l.add(at(k), path, "field names must be plain words, got %s", kindName(k))
			continue
		}
		name := k.Value
		fieldPath := joinPath(path, name)
		if seen[name] {
			l.add(at(k), fieldPath, "repeated field %q", name)
			continue
		}
		seen[name] = true
		if !slices.Contains(known, name) {
			msg := fmt.Sprintf("unknown field %q", name)
			if s := suggest(name, known); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			} else {
				msg += fmt.Sprintf(" (known: %s)", strings.Join(known, ", "))
			}
			l.add(at(k), fieldPath, "%s", msg)
			continue
		}
		out = append(out, field{name: name, key: k, val: v})
	}
	for _, f := range merged {
		if seen[f.name] {
			continue
		}
		seen[f.name] = true
		if !slices.Contains(known, f.name) {
			l.add(at(f.key), joinPath(path, f.name), "unknown field %q (merged from an anchor)", f.name)
			continue
		}
		out = append(out, f)
	}
	return out, true
}

// mergeSources returns the key/value pairs a merge key brings in: one
// mapping or a list of mappings, earlier ones winning.
func (l *loader) mergeSources(v *yaml.Node, path string) []field {
	v = l.resolve(v)
	if v == nil {
		return nil
	}
	var maps []*yaml.Node
	switch v.Kind {
	case yaml.MappingNode:
		maps = []*yaml.Node{v}
	case yaml.SequenceNode:
		for _, m := range v.Content {
			if m = l.resolve(m); m != nil {
				maps = append(maps, m)
			}
		}
	}
	var out []field
	seen := map[string]bool{}
	for _, m := range maps {
		if m.Kind != yaml.MappingNode {
			l.add(at(m), path, "\"<<\" must merge a mapping, got %s", kindName(m))
			continue
		}
		for i := 0; i+1 < len(m.Content); i += 2 {
			k := l.resolve(m.Content[i])
			if k == nil || k.Kind != yaml.ScalarNode || seen[k.Value] {
				continue
			}
			seen[k.Value] = true
			out = append(out, field{name: k.Value, key: k, val: m.Content[i+1]})
		}
	}
	return out
}

// resolve follows aliases and charges the walk budget; it returns nil once
// the budget is spent (reported once).
func (l *loader) resolve(n *yaml.Node) *yaml.Node {
	if l.exhausted {
		return nil
	}
	l.budget--
	if l.budget < 0 {
		l.exhausted = true
		l.add(at(n), "", "document too large: more than %d values once aliases are expanded", maxNodes)
		return nil
	}
	for depth := 0; n.Kind == yaml.AliasNode && n.Alias != nil; depth++ {
		if depth > 100 {
			l.add(at(n), "", "alias chain too long")
			return nil
		}
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	default:
		return "something else"
	}
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}
