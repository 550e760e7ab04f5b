package client

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/internal/catchup"
	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/statekey"
)

// Status is the committed state of one request.
type Status struct {
	Request  *schemas.Record   // the request's own record
	Children []*schemas.Record // its fan-out children, sorted by path
}

// Step is one started step of a request or of one of its children.
type Step struct {
	Path  string // full step path, e.g. "docs[1]/pages[7]/ocr"
	State *schemas.StepState
}

// Steps lists every started step of the request and its children, by
// start time (then path), so they read as a timeline.
func (s *Status) Steps() []Step {
	var out []Step
	for _, r := range append([]*schemas.Record{s.Request}, s.Children...) {
		for name, st := range r.Steps {
			out = append(out, Step{Path: statekey.StepPath(r.Path, name), State: st})
		}
	}
	slices.SortFunc(out, func(a, b Step) int {
		return cmp.Or(a.State.Started.Compare(b.State.Started), cmp.Compare(a.Path, b.Path))
	})
	return out
}

// Get reads the committed state of request id and its fan-out children
// from the state topic, every partition by the catch-up rule (package
// catchup) that the processors and the API's view follow too: up to the
// high watermark of the time of the call, waiting for a transaction still
// open below it to be decided. It returns an error wrapping ErrNotFound
// when the request has no record.
func (c *Client) Get(ctx context.Context, id string) (*Status, error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	records, expired, err := c.scan(ctx, id)
	if err != nil {
		return nil, err
	}
	st := &Status{Request: records[id]}
	if st.Request == nil && expired {
		return nil, fmt.Errorf("%w: %s", ErrExpired, id)
	}
	if st.Request == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	delete(records, id)
	var progress []*schemas.Record
	for _, r := range records {
		if r.Kind == schemas.KindFanout {
			progress = append(progress, r)
			continue
		}
		st.Children = append(st.Children, r)
	}
	// A running fan-out's finished children are counted in its progress
	// record; the parent step's Done is written only at the join.
	for _, p := range progress {
		parentPath, step := statekey.SplitStep(p.Path)
		parent := records[statekey.Format(id, parentPath)]
		if parentPath == "" {
			parent = st.Request
		}
		if parent != nil && parent.Steps[step] != nil {
			parent.Steps[step].Done = p.Done
		}
	}
	slices.SortFunc(st.Children, func(a, b *schemas.Record) int { return cmp.Compare(a.Path, b.Path) })
	return st, nil
}

// scan reads the state topic, keeping the latest record of every key of
// request id; expired reports that the request's own key ended in a
// tombstone.
func (c *Client) scan(ctx context.Context, id string) (records map[string]*schemas.Record, expired bool, _ error) {
	records = map[string]*schemas.Record{}
	_, err := catchup.Read(ctx, c.base, c.cfg.prefix.State(), nil, func(r *kgo.Record) {
		k := string(r.Key)
		if request, _, err := statekey.Parse(k); err != nil || request != id {
			return
		}
		if r.Value == nil { // tombstone: forgotten
			delete(records, k)
			expired = expired || k == id
			return
		}
		if k == id {
			expired = false
		}
		rec, err := schemas.DecodeRecord(r.Value)
		if err != nil {
			c.cfg.logger.Warn("undecodable state record", slog.String("key", k), slog.String("error", err.Error()))
			return
		}
		records[k] = rec
	})
	if err != nil {
		return nil, false, fmt.Errorf("stepwise: read state: %w", err)
	}
	return records, expired, nil
}
