package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"github.com/stepwise-run/stepwise/worker"
)

// A handler decodes its input, does the work, and returns its output.
// Middleware wraps it; here a panic becomes a retryable error.
func Example_middleware() {
	count := func(ctx context.Context, t *worker.Task) (json.RawMessage, error) {
		var in struct {
			Text string `json:"text"`
		}
		if err := t.Decode(&in); err != nil {
			return nil, worker.Permanent(err) // this input will never fit
		}
		if in.Text == "" {
			panic("empty text")
		}
		return worker.JSON(map[string]int{"chars": len(in.Text)})
	}
	h := worker.Recover(worker.Timeout(time.Second)(count))

	for _, input := range []string{`{"text": "hello"}`, `{"text": ""}`, `{"text": 7}`} {
		out, err := h(context.Background(), &worker.Task{Step: "count", Input: json.RawMessage(input)})
		fmt.Printf("output=%s error=%v permanent=%v\n", out, err, worker.IsPermanent(err))
	}
	// Output:
	// output={"chars":5} error=<nil> permanent=false
	// output= error=panic: empty text permanent=false
	// output= error=stepwise: decode input of step count: json: cannot unmarshal number into Go struct field .text of type string permanent=true
}

// A worker process: one handler per queue, run until interrupted.
func ExampleWorker() {
	w, err := worker.New(
		worker.WithBrokers("127.0.0.1:9092"),
		worker.WithLogger(slog.Default()),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	w.Use(worker.Logging(slog.Default()))
	w.Handle("ocr", func(ctx context.Context, t *worker.Task) (json.RawMessage, error) {
		var page struct {
			Image string `json:"image"`
		}
		if err := t.Decode(&page); err != nil {
			return nil, worker.Permanent(err)
		}
		if page.Image == "" {
			return nil, worker.Permanent(errors.New("page has no image"))
		}
		return worker.JSON(map[string]string{"text": "..."})
	}, worker.Concurrency(4))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := w.Run(ctx); err != nil {
		fmt.Println(err)
	}
}
