package idp

import (
	_ "embed"
	"fmt"
	"os"
	"time"

	"github.com/stepwise-run/stepwise/topology"
	"github.com/stepwise-run/stepwise/worker"
)

// WorkflowName is the name the workflow is started by.
const WorkflowName = "idp"

// Queues of the workflow's steps.
const (
	QueueSplit    = "split"
	QueueRender   = "render"
	QueueOCR      = "ocr"
	QueueLayout   = "layout"
	QueueClassify = "classify"
	QueueExtract  = "extract"
	QueueAssemble = "assemble"
	QueueNotify   = "notify" // the workflow's onFailure handler
)

// WorkflowsYAML is workflows.yaml, the definition of the idp workflow.
//
//go:embed workflows.yaml
var WorkflowsYAML []byte

// Definitions compiles the embedded workflows.yaml.
func Definitions() (*topology.Set, error) {
	return topology.Parse("examples/idp/workflows.yaml", WorkflowsYAML)
}

// DefaultLatency is the simulated time a step takes (OCR: four times as
// much) when neither WithLatency nor STEPWISE_IDP_LATENCY says otherwise.
const DefaultLatency = 5 * time.Millisecond

// LatencyEnv names the environment variable read for the simulated latency,
// a Go duration ("20ms", "0").
const LatencyEnv = "STEPWISE_IDP_LATENCY"

// LatencyFromEnv returns the latency set by STEPWISE_IDP_LATENCY, or
// DefaultLatency when it is unset. Programs call it to report a bad value;
// Handlers falls back to DefaultLatency on one.
func LatencyFromEnv() (time.Duration, error) {
	v, ok := os.LookupEnv(LatencyEnv)
	if !ok || v == "" {
		return DefaultLatency, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return DefaultLatency, fmt.Errorf("stepwise: %s=%q is not a non-negative duration such as 20ms", LatencyEnv, v)
	}
	return d, nil
}

// Option configures Handlers and Register.
type Option func(*config)

type config struct {
	latency    time.Duration
	latencySet bool
	handle     []worker.HandleOption
}

// WithLatency sets the simulated latency of each step (OCR: 4×); 0 turns
// it off.
func WithLatency(d time.Duration) Option {
	return func(c *config) { c.latency, c.latencySet = max(d, 0), true }
}

// WithHandleOptions passes opts (worker.Concurrency, for instance) to every
// Handle call of Register.
func WithHandleOptions(opts ...worker.HandleOption) Option {
	return func(c *config) { c.handle = append(c.handle, opts...) }
}

func newConfig(opts []Option) *config {
	c := &config{}
	for _, o := range opts {
		o(c)
	}
	if !c.latencySet {
		c.latency, _ = LatencyFromEnv()
	}
	return c
}

// Handlers returns the handler of each queue of the workflow.
func Handlers(opts ...Option) map[string]worker.Handler {
	c := newConfig(opts)
	return map[string]worker.Handler{
		QueueSplit:    c.slow(1, split),
		QueueRender:   c.slow(1, render),
		QueueOCR:      c.slow(4, ocr),
		QueueLayout:   c.slow(1, layout),
		QueueClassify: c.slow(1, classify),
		QueueExtract:  c.slow(1, extract),
		QueueAssemble: c.slow(1, assemble),
		QueueNotify:   notify,
	}
}

// Register registers every handler of the example on its queue.
func Register(w *worker.Worker, opts ...Option) {
	c := newConfig(opts)
	for queue, h := range Handlers(opts...) {
		w.Handle(queue, h, c.handle...)
	}
}
