package topology

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
	"gopkg.in/yaml.v3"
)

// Expressions (when:, input:, output:) are written in the expr language
// (github.com/expr-lang/expr; docs/expressions.md says why) and compiled
// here, once, when the file loads. The machine only runs the programs.

// Limits of an expression: at load, its size in syntax-tree nodes; when it
// runs, the memory it may allocate, in the units of expr's virtual machine
// (about one per element of a list or map built).
const (
	ExprMaxNodes     = 2000
	ExprMemoryBudget = 1_000_000
)

// ExprVars are the names an expression may use. input is the instance's
// input (the request input, or a fan-out child's input); steps maps the
// name of each succeeded step the expression may see (a step's
// dependencies; for a workflow's output, every top-level step) to its
// output. A skipped step is absent from steps.
var ExprVars = []string{"input", "steps"}

// exprDisabled are expr builtins left out so that a program's result
// depends only on its variables: now and date read the clock or the host's
// time zone, timezone loads the host's zone database, and keys, values and
// toPairs return a map's entries in Go's random map order.
var exprDisabled = []string{"now", "date", "timezone", "keys", "values", "toPairs"}

// Expr is one compiled expression of a definition.
type Expr struct {
	Source  string      // as written
	Path    string      // field path, e.g. "workflows[0].steps[1].when"
	Program *vm.Program // safe for concurrent use by several VMs
}

// Mapping is one key of an input: or output: mapping, whose value is the
// result of Expr.
type Mapping struct {
	Key  string
	Expr *Expr
}

// exprSpec is an expression as written, compiled by validate.
type exprSpec struct {
	str
	quoted  bool // written in quotes: its text starts one column after at
	block   bool // a block scalar (| or >): its text starts on the next line
	program *vm.Program
}

type mappingSpec struct {
	key  str
	expr exprSpec
}

// expr reads an expression field: a string scalar.
func (l *loader) expr(n *yaml.Node, path string) exprSpec {
	s := l.str(n, path)
	e := exprSpec{str: s}
	if r := l.resolve(n); r != nil && r.Kind == yaml.ScalarNode {
		e.quoted = r.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0
		e.block = r.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0
	}
	return e
}

// mapping reads a mapping of keys to expressions (input:, output:), in
// file order. Keys are free; a repeated key is reported.
func (l *loader) mapping(n *yaml.Node, path string) []mappingSpec {
	r := l.resolve(n)
	if r == nil || isNull(r) {
		return nil
	}
	if r.Kind != yaml.MappingNode {
		l.add(at(r), path, "must be a mapping of keys to expressions, got %s", kindName(r))
		return nil
	}
	var out []mappingSpec
	seen := map[string]bool{}
	for i := 0; i+1 < len(r.Content); i += 2 {
		k := l.resolve(r.Content[i])
		if k == nil {
			return out
		}
		if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!merge" {
			l.add(at(k), path, "keys must be plain words, got %s", kindName(k))
			continue
		}
		p := path + "." + k.Value
		if seen[k.Value] {
			l.add(at(k), p, "repeated key %q", k.Value)
			continue
		}
		seen[k.Value] = true
		e := l.expr(r.Content[i+1], p)
		e.str = exprDefault(e.str, at(k))
		out = append(out, mappingSpec{key: str{val: k.Value, at: at(k), set: true}, expr: e})
	}
	return out
}

// exprDefault gives an absent value the position of its key.
func exprDefault(s str, key pos) str {
	if !s.set && !s.bad {
		s.at = key
	}
	return s
}

// compileExpr compiles e and checks that every steps.X it names is one of
// visible; problems are reported at the expression's position. asBool
// requires a boolean result.
func compileExpr(e *exprSpec, path string, visible []string, asBool bool, l *errorList) {
	if !e.set || strings.TrimSpace(e.val) == "" {
		if !e.bad {
			l.add(e.at, path, "empty expression")
		}
		return
	}
	env := map[string]any{"input": map[string]any{}, "steps": map[string]any{}}
	opts := []expr.Option{expr.Env(env), expr.MaxNodes(ExprMaxNodes), expr.Optimize(true)}
	for _, b := range exprDisabled {
		opts = append(opts, expr.DisableBuiltin(b))
	}
	if asBool {
		opts = append(opts, expr.AsBool())
	}
	prog, err := expr.Compile(e.val, opts...)
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			l.add(e.posOf(fe.Line, fe.Column), path, "in expression %q: %s", e.val, fe.Message)
		} else {
			l.add(e.at, path, "in expression %q: %v", e.val, err)
		}
		return
	}
	node := prog.Node()
	v := &stepRefs{src: e.val}
	ast.Walk(&node, v)
	for _, ref := range v.refs {
		if !slices.Contains(visible, ref.name) {
			what := "dependencies"
			if strings.Contains(path, ".output.") {
				what = "top-level steps"
			}
			known := "none"
			if len(visible) > 0 {
				known = strings.Join(visible, ", ")
			}
			l.add(e.posOf(ref.line, ref.col), path, "in expression %q: steps.%s is not one of the %s this expression can see (%s)", e.val, ref.name, what, known)
		}
	}
	e.program = prog
}

// posOf maps a position inside the expression (1-based line, 0-based
// column, as expr reports it) to the file. A block scalar's indentation is
// not known here: its line is exact, its column the expression's own.
func (e *exprSpec) posOf(line, col int) pos {
	if line < 1 {
		line = 1
	}
	if e.block {
		return pos{e.at.line + line, col + 1}
	}
	if line > 1 {
		return pos{e.at.line + line - 1, col + 1}
	}
	p := pos{e.at.line, e.at.col + col}
	if e.quoted {
		p.col++
	}
	return p
}

type stepRef struct {
	name      string
	line, col int
}

// stepRefs collects steps.X and steps["X"] of a syntax tree.
type stepRefs struct {
	src  string
	refs []stepRef
}

func (v *stepRefs) Visit(n *ast.Node) {
	m, ok := (*n).(*ast.MemberNode)
	if !ok {
		return
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	if !ok || id.Value != "steps" {
		return
	}
	if s, ok := m.Property.(*ast.StringNode); ok {
		line, col := lineCol(v.src, id.Location().From)
		v.refs = append(v.refs, stepRef{name: s.Value, line: line, col: col})
	}
}

// validateExprs compiles every expression of a workflow: each step's when:
// and input: over its dependencies, and the workflow's output: over its
// top-level steps.
func validateExprs(w *workflowSpec, l *errorList) {
	graph := func(steps []*stepSpec) {
		for _, s := range steps {
			if s.bad {
				continue
			}
			var deps []string
			for _, d := range s.depends {
				if d.val != Start {
					deps = append(deps, d.val)
				}
			}
			if s.when.set || s.when.bad {
				compileExpr(&s.when, s.path+".when", deps, true, l)
			}
			for i := range s.input {
				m := &s.input[i]
				compileExpr(&m.expr, s.path+".input."+m.key.val, deps, false, l)
			}
		}
	}
	graph(w.steps)
	for _, t := range w.tasks {
		if !t.bad {
			graph(t.steps)
		}
	}
	var top []string
	for _, s := range w.steps {
		if !s.bad && s.name.set {
			top = append(top, s.name.val)
		}
	}
	for i := range w.output {
		m := &w.output[i]
		compileExpr(&m.expr, w.path+".output."+m.key.val, top, false, l)
	}
}

// compileExprSpec turns a compiled spec into the model; nil when unset.
func compileExprSpec(e exprSpec, path string) *Expr {
	if e.program == nil {
		return nil
	}
	return &Expr{Source: e.val, Path: path, Program: e.program}
}

func compileMappings(ms []mappingSpec, path string) []Mapping {
	if len(ms) == 0 {
		return nil
	}
	out := make([]Mapping, 0, len(ms))
	for _, m := range ms {
		out = append(out, Mapping{Key: m.key.val, Expr: compileExprSpec(m.expr, path+"."+m.key.val)})
	}
	return out
}

// String names an expression in messages: its field path and source.
func (e *Expr) String() string { return fmt.Sprintf("%s %q", e.Path, e.Source) }

// lineCol turns a rune offset of src into a 1-based line and a 0-based
// column, as expr's own errors count them.
func lineCol(src string, from int) (line, col int) {
	line = 1
	n := 0
	for _, r := range src {
		if n == from {
			break
		}
		if r == '\n' {
			line, col = line+1, 0
		} else {
			col++
		}
		n++
	}
	return line, col
}
