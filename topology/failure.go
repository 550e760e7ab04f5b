package topology

import (
	"strconv"

	"gopkg.in/yaml.v3"
)

// Failure handling keys of a definition (docs/yaml-reference.md).

// boolField is a boolean field.
type boolField struct {
	val bool
	at  pos
	set bool
}

// boolean reads a boolean: true or false (YAML's other spellings of them too).
func (l *loader) boolean(n *yaml.Node, path string) boolField {
	v := l.scalar(n, path)
	if v == nil {
		return boolField{}
	}
	b, err := strconv.ParseBool(v.Value)
	if err != nil {
		l.add(at(v), path, "must be true or false, got %q", v.Value)
		return boolField{}
	}
	return boolField{val: b, at: at(v), set: true}
}

// validateFailureKeys checks the failure handling keys of one step: a
// fan-out step has no continueOnFailure (its children fail the request).
func validateFailureKeys(s *stepSpec, l *errorList) {
	if s.continueOnFailure.set && s.task.set {
		l.add(s.continueOnFailure.at, s.path+".continueOnFailure", "a fan-out step (task: %s) is not dispatched: set continueOnFailure on its task's steps", s.task.val)
	}
}
