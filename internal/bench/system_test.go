package bench

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stepwise-run/stepwise/internal/devbroker"
)

// A child processor that exits before joining its group makes the wait for
// the group fail at once with the child's own last output; before, the
// bench waited out the timeout and printed only the group's state.
func TestWaitGroupStableReportsChildExit(t *testing.T) {
	b, err := devbroker.Start(devbroker.WithAddr("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	r, err := newRunner(Config{Conn: b.Conn("exit.")})
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	const fatal = "stepwise run: stepwise: kafka topics do not match the topic plan"
	c, err := startChild([]string{"sh", "-c", "echo 'level=INFO msg=starting' >&2; echo '" + fatal + "' >&2; exit 1"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	err = r.waitGroupStable(context.Background(), "exit.", "exit.processors", []system{c}, time.Minute)
	if err == nil || !strings.Contains(err.Error(), fatal) || !strings.Contains(err.Error(), "exit status 1") {
		t.Fatalf("waitGroupStable = %v, want the child's exit and its last line", err)
	}
	if d := time.Since(t0); d > 30*time.Second {
		t.Errorf("the exit was reported after %s, not at once", d)
	}
	t.Log(err)
}
