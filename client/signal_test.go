package client

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
)

// A signal goes to the start's partition, as the protocol describes it.
func TestSignal(t *testing.T) {
	c := cluster(t)
	cl := newClient(t, c)
	p := newProcessor(t, c)
	ctx := context.Background()
	if _, err := cl.Start(ctx, "wc", "s-1", nil); err != nil {
		t.Fatal(err)
	}
	_, home := p.next()
	if err := cl.Signal(ctx, "s-1", "approve", "docs[1]/review", json.RawMessage(`{"by":"ann"}`)); err != nil {
		t.Fatal(err)
	}
	msg, part := p.next()
	if msg.Type != "signal" || msg.ID != "s-1" || msg.Name != "approve" || msg.Step != "docs[1]/review" || string(msg.Data) != `{"by":"ann"}` {
		t.Fatalf("signal record %+v", msg)
	}
	if part != home {
		t.Fatalf("signal on partition %d, start on %d", part, home)
	}
	if err := cl.Signal(ctx, "s-1", "approve", "", nil); err != nil {
		t.Fatal(err)
	}
	if msg, _ := p.next(); msg.Data != nil || msg.Step != "" {
		t.Fatalf("signal without data or step: %+v", msg)
	}
	if err := cl.Signal(ctx, "s-1", "approve", "", json.RawMessage(`[1]`)); !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("data that is not an object: %v", err)
	}
	if err := cl.Signal(ctx, "bad id", "approve", "", nil); err == nil {
		t.Fatal("invalid id accepted")
	}
}
