package api

import (
	"context"
	"encoding/json"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/client"
	"github.com/stepwise-run/stepwise/kconn"
)

// Sender writes starts, cancels, retries and signals to the requests topic. Start must be
// idempotent per id (the processors ignore a second start of a known id).
// *client.Client is one.
type Sender interface {
	Start(ctx context.Context, workflow, id string, input json.RawMessage, opts ...client.StartOption) (string, error)
	Cancel(ctx context.Context, id, reason string) error
	Retry(ctx context.Context, id string, run int, from string) error
	Signal(ctx context.Context, id, name, step string, data json.RawMessage) error
	Close()
}

// newSender returns the Sender of conn's installation: package client,
// which puts a start on its key's hash partition (the home partition) and a
// cancel beside it.
func newSender(conn kconn.Config, extra ...kgo.Opt) (Sender, error) {
	return client.New(client.WithConn(conn), client.WithKafkaOpts(extra...))
}
