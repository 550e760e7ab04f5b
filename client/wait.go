package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/schemas"
)

// Wait blocks until request id finishes and returns its completion, or
// until ctx ends (returning ctx's error).
//
// For a request this client started, Wait reads the completions of the
// home partition from where they ended before the start; when the caller
// chose the id, it first reads the request's state, since that id may name
// a request finished before this start (which was then ignored). For a
// request started elsewhere, Wait notes where completions end, then reads
// the request's state: a finished request's completion is built from its
// state record, a running one's is awaited from the noted offset; it
// returns ErrNotFound when the request has no state (never started, or
// already forgotten). For a request this client started, a request of
// another workflow found under the id (an earlier one: this start was
// ignored) gives an error wrapping ErrExists, never its completion.
func (c *Client) Wait(ctx context.Context, id string) (*Completion, error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	m, ok := c.recall(id)
	if ok && !m.fresh {
		st, err := c.Get(ctx, id)
		switch {
		case err == nil && st.Request.Workflow != m.workflow:
			c.forget(id)
			return nil, existsError(id, st.Request.Workflow, string(st.Request.Status))
		case err == nil && st.Request.Status != schemas.Running:
			c.forget(id)
			return fromRecord(st.Request), nil
		case err != nil && !errors.Is(err, ErrNotFound):
			return nil, err
		}
		// Running, or not yet recorded: its completion comes after m.
	}
	if !ok {
		ends, err := c.adm.ListEndOffsets(ctx, c.cfg.prefix.Completions())
		if err == nil {
			err = ends.Error()
		}
		if err != nil {
			return nil, fmt.Errorf("stepwise: list completions offsets: %w", err)
		}
		st, err := c.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if st.Request.Status != schemas.Running {
			return fromRecord(st.Request), nil
		}
		end, ok := ends.Lookup(c.cfg.prefix.Completions(), st.Request.Partition)
		if !ok {
			return nil, fmt.Errorf("stepwise: completions topic has no partition %d, the home partition of %s", st.Request.Partition, id)
		}
		m = mark{partition: st.Request.Partition, offset: end.Offset}
	}
	comp, err := c.follow(ctx, id, m)
	if err == nil {
		c.forget(id)
	}
	return comp, err
}

// follow reads one completions partition from m until id's completion.
func (c *Client) follow(ctx context.Context, id string, m mark) (*Completion, error) {
	topic := c.cfg.prefix.Completions()
	cl, err := kgo.NewClient(append(append([]kgo.Opt{}, c.base...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {m.partition: kgo.NewOffset().At(m.offset)}}),
		// Completions are written in processor transactions.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)...)
	if err != nil {
		return nil, fmt.Errorf("stepwise: completions reader: %w", err)
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var found *Completion
		fs.EachError(func(t string, p int32, err error) {
			c.cfg.logger.Warn("completions fetch error", slog.String("topic", t), slog.Int("partition", int(p)), slog.String("error", err.Error()))
		})
		fs.EachRecord(func(r *kgo.Record) {
			if found != nil || string(r.Key) != id {
				return
			}
			var comp Completion
			if err := json.Unmarshal(r.Value, &comp); err != nil {
				c.cfg.logger.Warn("undecodable completion", slog.String("request", id), slog.String("error", err.Error()))
				return
			}
			comp.Partition = r.Partition
			found = &comp
		})
		if found != nil && m.workflow != "" && found.Workflow != m.workflow {
			return nil, existsError(id, found.Workflow, string(found.Status))
		}
		if found != nil {
			return found, nil
		}
	}
}

// fromRecord builds the completion of a finished request from its state.
func fromRecord(r *schemas.Record) *Completion {
	return &Completion{
		Request:   r.Request,
		Workflow:  r.Workflow,
		Status:    schemas.CompletionStatus(r.Status),
		Output:    r.Output,
		Error:     r.Error,
		Started:   r.Created,
		Finished:  r.Updated,
		Partition: r.Partition,
	}
}
