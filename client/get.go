package client

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/processors/machine"
)

// Status is the committed state of one request.
type Status struct {
	Request  *machine.Record   // the request's own record
	Children []*machine.Record // its fan-out children, sorted by path
}

// Step is one started step of a request or of one of its children.
type Step struct {
	Path  string // full step path, e.g. "docs[1]/pages[7]/ocr"
	State *machine.StepState
}

// Steps lists every started step of the request and its children, by
// start time (then path), so they read as a timeline.
func (s *Status) Steps() []Step {
	var out []Step
	for _, r := range append([]*machine.Record{s.Request}, s.Children...) {
		for name, st := range r.Steps {
			p := name
			if r.Path != "" {
				p = r.Path + "/" + name
			}
			out = append(out, Step{Path: p, State: st})
		}
	}
	slices.SortFunc(out, func(a, b Step) int {
		return cmp.Or(a.State.Started.Compare(b.State.Started), cmp.Compare(a.Path, b.Path))
	})
	return out
}

// Get reads the committed state of request id and its fan-out children
// from the state topic: every partition, up to its last stable offset at
// the time of the call. It returns an error wrapping ErrNotFound when the
// request has no record.
func (c *Client) Get(ctx context.Context, id string) (*Status, error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	topic := c.cfg.prefix.State()
	// The last stable offset: read_committed sees nothing beyond it yet.
	ends, err := c.adm.ListCommittedOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("stepwise: list state offsets: %w", err)
	}
	starts, err := c.adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("stepwise: list state offsets: %w", err)
	}
	target := map[int32]int64{}
	from := map[int32]kgo.Offset{}
	for p, end := range ends[topic] {
		if s, ok := starts.Lookup(topic, p); ok && s.Offset < end.Offset {
			target[p] = end.Offset
			from[p] = kgo.NewOffset().At(s.Offset)
		}
	}

	records := map[string]*machine.Record{}
	if len(target) > 0 {
		if err := c.scan(ctx, topic, from, target, id, records); err != nil {
			return nil, err
		}
	}
	st := &Status{Request: records[id]}
	if st.Request == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	delete(records, id)
	var progress []*machine.Record
	for _, r := range records {
		if r.Kind == machine.KindFanout {
			progress = append(progress, r)
			continue
		}
		st.Children = append(st.Children, r)
	}
	// A running fan-out's finished children are counted in its progress
	// record; the parent step's Done is written only at the join.
	for _, p := range progress {
		parentPath, step := "", p.Path
		if i := strings.LastIndexByte(p.Path, '/'); i >= 0 {
			parentPath, step = p.Path[:i], p.Path[i+1:]
		}
		parent := records[machine.RecordKey(id, parentPath)]
		if parentPath == "" {
			parent = st.Request
		}
		if parent != nil && parent.Steps[step] != nil {
			parent.Steps[step].Done = p.Done
		}
	}
	slices.SortFunc(st.Children, func(a, b *machine.Record) int { return cmp.Compare(a.Path, b.Path) })
	return st, nil
}

// scan reads the partitions in from until each reaches its target offset,
// keeping the latest record of id and of every key under "id/".
func (c *Client) scan(ctx context.Context, topic string, from map[int32]kgo.Offset, target map[int32]int64, id string, records map[string]*machine.Record) error {
	cl, err := kgo.NewClient(append(append([]kgo.Opt{}, c.base...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: from}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Transaction markers are what a partition's committed tail may
		// end with; seeing them is how the scan knows it reached the end.
		kgo.KeepControlRecords(),
		kgo.FetchMaxWait(100*time.Millisecond),
	)...)
	if err != nil {
		return fmt.Errorf("stepwise: state reader: %w", err)
	}
	defer cl.Close()
	child := id + "/"
	for len(target) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		fs.EachError(func(t string, p int32, err error) {
			c.cfg.logger.Warn("state fetch error", slog.String("topic", t), slog.Int("partition", int(p)), slog.String("error", err.Error()))
		})
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset+1 >= target[r.Partition] {
				delete(target, r.Partition)
			}
			if r.Attrs.IsControl() {
				return
			}
			k := string(r.Key)
			if k != id && !strings.HasPrefix(k, child) {
				return
			}
			if r.Value == nil { // tombstone: forgotten
				delete(records, k)
				return
			}
			rec, err := machine.Decode(r.Value)
			if err != nil {
				c.cfg.logger.Warn("undecodable state record", slog.String("key", k), slog.String("error", err.Error()))
				return
			}
			records[k] = rec
		})
	}
	return nil
}
