package definitions

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/stepwise-run/stepwise/topology"
)

// Errors of Resolve. They are what a refused start or a failed request
// says, so each names what to do.
var (
	ErrUnknownWorkflow = errors.New("stepwise: unknown workflow")
	ErrDeleted         = errors.New("stepwise: workflow deleted")
	ErrUnknownVersion  = errors.New("stepwise: unknown workflow version")
)

// Entry is one version of one workflow as a Catalog holds it.
type Entry struct {
	Record
	// Compiled is the workflow of Source; nil for a deletion, or when
	// Problem is set.
	Compiled *topology.Workflow
	// Problem says why Source did not compile (written by a newer
	// Stepwise, or damaged).
	Problem string
}

// Catalog holds every known version of every workflow. The follower adds
// records as they arrive; the state machine and the API read it. It is
// safe for concurrent use.
//
// Invariant: the entries of a workflow are sorted by version, with no
// version twice; an entry is never replaced once added.
type Catalog struct {
	mu struct {
		sync.RWMutex
		byName map[string][]*Entry
		gen    uint64 // bumped by every change
	}
}

// NewCatalog returns an empty catalogue.
func NewCatalog() *Catalog {
	c := &Catalog{}
	c.mu.byName = map[string][]*Entry{}
	return c
}

// FromSet returns a catalogue holding every workflow of set as its version
// 1, for running without a definitions topic (tests, tools).
func FromSet(set *topology.Set) *Catalog {
	c := NewCatalog()
	for _, name := range set.Order {
		w := set.Workflows[name]
		c.mu.byName[name] = []*Entry{{
			Record:   Record{Workflow: name, Version: 1, Hash: HashOf(w.Source), Source: string(w.Source), File: w.File},
			Compiled: w,
		}}
	}
	return c
}

// Add puts a record in the catalogue. It reports whether anything changed:
// a record already held (same version and hash) changes nothing. A record
// for a version already held with other content is refused with an error;
// the first one stays, because requests may already run on it.
func (c *Catalog) Add(r *Record) (bool, error) {
	e := &Entry{Record: *r}
	if !r.Deleted {
		set, err := topology.Parse(r.File, []byte(r.Source))
		switch {
		case err != nil:
			e.Problem = err.Error()
		case set.Lookup(r.Workflow) == nil:
			e.Problem = fmt.Sprintf("the source defines no workflow %q", r.Workflow)
		default:
			e.Compiled = set.Lookup(r.Workflow)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	list := c.mu.byName[r.Workflow]
	i, found := slices.BinarySearchFunc(list, r.Version, func(e *Entry, v int) int { return e.Version - v })
	if found {
		if list[i].Hash == r.Hash && list[i].Deleted == r.Deleted {
			return false, nil
		}
		return false, fmt.Errorf("stepwise: %s version %d arrived twice with different content (%s, then %s); keeping the first", r.Workflow, r.Version, list[i].Hash, r.Hash)
	}
	c.mu.byName[r.Workflow] = slices.Insert(list, i, e)
	c.mu.gen++
	return true, nil
}

// Resolve returns the compiled workflow of name at version, and the version
// it resolved to. Version 0 means the newest: refused with ErrDeleted when
// the newest version is a deletion. An explicit version must exist and not
// be a deletion (ErrUnknownVersion); it may be older than a deletion, so
// requests pinned to it run to the end.
func (c *Catalog) Resolve(name string, version int) (*topology.Workflow, int, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	list := c.mu.byName[name]
	if len(list) == 0 {
		return nil, 0, fmt.Errorf("%w %q", ErrUnknownWorkflow, name)
	}
	var e *Entry
	if version == 0 {
		e = list[len(list)-1]
		if e.Deleted {
			return nil, 0, fmt.Errorf("%w: %q was deleted at version %d; apply it again to start new requests", ErrDeleted, name, e.Version)
		}
	} else {
		i, found := slices.BinarySearchFunc(list, version, func(e *Entry, v int) int { return e.Version - v })
		if !found || list[i].Deleted {
			return nil, 0, fmt.Errorf("%w: %q has no version %d (known: %s)", ErrUnknownVersion, name, version, versionList(list))
		}
		e = list[i]
	}
	if e.Compiled == nil {
		return nil, 0, fmt.Errorf("%w: %q version %d does not load: %s", ErrUnknownVersion, name, e.Version, e.Problem)
	}
	return e.Compiled, e.Version, nil
}

func versionList(list []*Entry) string {
	s := ""
	for i, e := range list {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprint(e.Version)
		if e.Deleted {
			s += " (deleted)"
		}
	}
	return s
}

// Newest returns the newest entry of name (a deletion included).
func (c *Catalog) Newest(name string) (*Entry, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	list := c.mu.byName[name]
	if len(list) == 0 {
		return nil, false
	}
	return list[len(list)-1], true
}

// Versions returns every entry of name, oldest first.
func (c *Catalog) Versions(name string) []*Entry {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return slices.Clone(c.mu.byName[name])
}

// Entry returns version of name.
func (c *Catalog) Entry(name string, version int) (*Entry, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	list := c.mu.byName[name]
	i, found := slices.BinarySearchFunc(list, version, func(e *Entry, v int) int { return e.Version - v })
	if !found {
		return nil, false
	}
	return list[i], true
}

// Names returns every workflow name ever applied, sorted.
func (c *Catalog) Names() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return slices.Sorted(maps.Keys(c.mu.byName))
}

// Generation changes whenever the catalogue does, so readers can cache
// what they derive from it.
func (c *Catalog) Generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.mu.gen
}

// Current returns the workflows new requests start on: the newest version
// of every workflow not deleted, that compiled. Order is by name.
func (c *Catalog) Current() *topology.Set {
	c.mu.RLock()
	defer c.mu.RUnlock()
	set := &topology.Set{Workflows: map[string]*topology.Workflow{}}
	for _, name := range slices.Sorted(maps.Keys(c.mu.byName)) {
		list := c.mu.byName[name]
		if e := list[len(list)-1]; e.Compiled != nil {
			set.Workflows[name] = e.Compiled
			set.Order = append(set.Order, name)
		}
	}
	return set
}

// All returns a set of every workflow that compiled, at any version not a
// deletion, for planning topics: the queues of requests still running on
// an old version are needed as much as the current ones. Workflows are
// keyed "<name>/<version>".
func (c *Catalog) All() *topology.Set {
	c.mu.RLock()
	defer c.mu.RUnlock()
	set := &topology.Set{Workflows: map[string]*topology.Workflow{}}
	for _, name := range slices.Sorted(maps.Keys(c.mu.byName)) {
		for _, e := range c.mu.byName[name] {
			if e.Compiled != nil {
				k := KeyOf(name, e.Version)
				set.Workflows[k] = e.Compiled
				set.Order = append(set.Order, k)
			}
		}
	}
	return set
}
