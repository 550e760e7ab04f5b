package metrics

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
)

const namespace = "stepwise"

// Buckets of the duration histograms, seconds: a step of an online
// workflow takes milliseconds to minutes.
var (
	durationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}
	batchBuckets    = []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000}
)

// NewRegistry returns a registry with the Go runtime and process
// collectors, the usual companions of an exporter.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Handler serves reg in the Prometheus text (or OpenMetrics) format.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// KafkaHooks returns franz-go's kprom hooks registered on reg for the
// clients of one component ("processor", "api", "worker"): add the
// result to the client's options with kgo.WithHooks. With a nil reg it
// returns no option.
func KafkaHooks(reg prometheus.Registerer, component string) []kgo.Opt {
	if reg == nil {
		return nil
	}
	m := kprom.NewMetrics(namespace+"_kafka",
		kprom.Registerer(prometheus.WrapRegistererWith(prometheus.Labels{"component": component}, reg)),
		kprom.FetchAndProduceDetail(kprom.ByNode, kprom.Batches, kprom.Records, kprom.CompressedBytes, kprom.UncompressedBytes))
	return []kgo.Opt{kgo.WithHooks(m)}
}

// StepLabel turns a step path into its label value: fan-out indexes are
// removed, so "docs[3]/pages[0]/ocr" is "docs/pages/ocr" and the label
// set stays bounded by the definition.
func StepLabel(path string) string {
	if strings.IndexByte(path, '[') < 0 {
		return path
	}
	var b strings.Builder
	skip := false
	for _, c := range path {
		switch {
		case c == '[':
			skip = true
		case c == ']':
			skip = false
		case !skip:
			b.WriteRune(c)
		}
	}
	return b.String()
}

// Processor is the processors' set. Methods on a nil *Processor do
// nothing.
type Processor struct {
	requestsStarted  *prometheus.CounterVec
	requestsFinished *prometheus.CounterVec
	requestDuration  *prometheus.HistogramVec
	stepsStarted     *prometheus.CounterVec
	stepsRetried     *prometheus.CounterVec
	stepsSucceeded   *prometheus.CounterVec
	stepsFailed      *prometheus.CounterVec
	stepsTimedOut    *prometheus.CounterVec
	stepDuration     *prometheus.HistogramVec
	inFlight         *prometheus.GaugeVec
	timers           *prometheus.GaugeVec
	commitSeconds    prometheus.Histogram
	batchRecords     prometheus.Histogram
	aborts           prometheus.Counter
	restarts         prometheus.Counter
	disowned         prometheus.Counter
	restoreSeconds   prometheus.Histogram
	restoreRecords   prometheus.Counter
	dropped          *prometheus.CounterVec
}

// NewProcessor registers the processors' metrics on reg.
func NewProcessor(reg prometheus.Registerer) *Processor {
	f := promauto.With(reg)
	wf := []string{"workflow"}
	ws := []string{"workflow", "step"}
	return &Processor{
		requestsStarted:  f.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "requests_started_total", Help: "Requests started."}, wf),
		requestsFinished: f.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "requests_finished_total", Help: "Requests finished, by final status."}, []string{"workflow", "status"}),
		requestDuration: f.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "request_duration_seconds",
			Help: "Time from a request's start to its completion.", Buckets: durationBuckets}, []string{"workflow", "status"}),
		stepsStarted:   f.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "steps_started_total", Help: "Step attempts dispatched to workers."}, ws),
		stepsRetried:   f.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "steps_retried_total", Help: "Step attempts dispatched after a failed one."}, ws),
		stepsSucceeded: f.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "steps_succeeded_total", Help: "Step attempts that succeeded."}, ws),
		stepsFailed:    f.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "steps_failed_total", Help: "Step attempts that failed (retried or not)."}, ws),
		stepsTimedOut:  f.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "steps_timed_out_total", Help: "Step attempts that ran past their timeout."}, ws),
		stepDuration: f.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "step_duration_seconds",
			Help: "Time from a step attempt's dispatch to its result.", Buckets: durationBuckets}, []string{"workflow", "step", "outcome"}),
		inFlight: f.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "requests_in_flight", Help: "Running requests of an owned partition."}, []string{"partition"}),
		timers:   f.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "timers", Help: "Pending timers (retries, timeouts, expiries) of an owned partition."}, []string{"partition"}),
		commitSeconds: f.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "transaction_commit_seconds",
			Help: "Time to flush and end a committed transaction.", Buckets: durationBuckets}),
		batchRecords: f.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "transaction_batch_records",
			Help: "Input records consumed by one committed transaction.", Buckets: batchBuckets}),
		aborts:   f.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "transaction_aborts_total", Help: "Transactions aborted (their inputs are consumed again)."}),
		restarts: f.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "processor_restarts_total", Help: "Group sessions started over after a transaction ended in error."}),
		disowned: f.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "partitions_disowned_total",
			Help: "Partitions a processor held outside the group's assignment (a revoke it was not told of), set aside before any event of theirs ran."}),
		restoreSeconds: f.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "restore_duration_seconds",
			Help: "Time to restore the state of newly assigned partitions.", Buckets: durationBuckets}),
		restoreRecords: f.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "restore_records_total", Help: "State records read by restores."}),
		dropped: f.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "inputs_dropped_total",
			Help: "Input records or events dropped after a log line (undecodable, oversize...)."}, []string{"topic", "reason"}),
	}
}

// Batch collects what one transaction did, to be added to the counters
// only if it commits. The zero value is ready; a nil *Batch records
// nothing.
type Batch struct {
	obs []func(*Processor)
}

// NewBatch returns a batch collector, or nil when m is nil.
func (m *Processor) NewBatch() *Batch {
	if m == nil {
		return nil
	}
	return &Batch{}
}

func (b *Batch) add(f func(*Processor)) {
	if b != nil {
		b.obs = append(b.obs, f)
	}
}

// RequestStarted records a start.
func (b *Batch) RequestStarted(workflow string) {
	b.add(func(m *Processor) { m.requestsStarted.WithLabelValues(workflow).Inc() })
}

// RequestFinished records a completion.
func (b *Batch) RequestFinished(workflow, status string, took time.Duration) {
	b.add(func(m *Processor) {
		m.requestsFinished.WithLabelValues(workflow, status).Inc()
		m.requestDuration.WithLabelValues(workflow, status).Observe(took.Seconds())
	})
}

// StepDispatched records a dispatched attempt of the step at path.
func (b *Batch) StepDispatched(workflow, path string, attempt int) {
	step := StepLabel(path)
	b.add(func(m *Processor) {
		m.stepsStarted.WithLabelValues(workflow, step).Inc()
		if attempt > 1 {
			m.stepsRetried.WithLabelValues(workflow, step).Inc()
		}
	})
}

// StepResult records an attempt's result; took is dispatch to result (0:
// unknown, not observed).
func (b *Batch) StepResult(workflow, path string, ok bool, took time.Duration) {
	step := StepLabel(path)
	b.add(func(m *Processor) {
		outcome := "succeeded"
		if ok {
			m.stepsSucceeded.WithLabelValues(workflow, step).Inc()
		} else {
			outcome = "failed"
			m.stepsFailed.WithLabelValues(workflow, step).Inc()
		}
		if took > 0 {
			m.stepDuration.WithLabelValues(workflow, step, outcome).Observe(took.Seconds())
		}
	})
}

// StepTimedOut records an attempt that ran past its timeout.
func (b *Batch) StepTimedOut(workflow, path string) {
	step := StepLabel(path)
	b.add(func(m *Processor) { m.stepsTimedOut.WithLabelValues(workflow, step).Inc() })
}

// Committed adds a committed batch: its records, the commit's time, and
// everything collected.
func (m *Processor) Committed(b *Batch, records int, commit time.Duration) {
	if m == nil || b == nil {
		return
	}
	m.batchRecords.Observe(float64(records))
	m.commitSeconds.Observe(commit.Seconds())
	for _, f := range b.obs {
		f(m)
	}
}

// Aborted counts an aborted transaction.
func (m *Processor) Aborted() {
	if m != nil {
		m.aborts.Inc()
	}
}

// Restarted counts a group session started over.
func (m *Processor) Restarted() {
	if m != nil {
		m.restarts.Inc()
	}
}

// Disowned counts a partition held outside the group's assignment and
// set aside.
func (m *Processor) Disowned() {
	if m != nil {
		m.disowned.Inc()
	}
}

// Restored records one restore.
func (m *Processor) Restored(records int, took time.Duration) {
	if m != nil {
		m.restoreSeconds.Observe(took.Seconds())
		m.restoreRecords.Add(float64(records))
	}
}

// Dropped counts an input of a committed batch that changed no state
// (logged by the processor); topic is the input's kind ("requests",
// "results", "timers"), reason one of the fixed reasons of package
// processors and processors/machine.
func (m *Processor) Dropped(topic, reason string) {
	if m != nil {
		m.dropped.WithLabelValues(topic, reason).Inc()
	}
}

// Partition sets the gauges of an owned partition.
func (m *Processor) Partition(part int32, inFlight, timers int) {
	if m != nil {
		l := strconv.Itoa(int(part))
		m.inFlight.WithLabelValues(l).Set(float64(inFlight))
		m.timers.WithLabelValues(l).Set(float64(timers))
	}
}

// PartitionGone removes the gauges of partitions no longer owned.
func (m *Processor) PartitionGone(parts ...int32) {
	if m == nil {
		return
	}
	for _, part := range parts {
		l := strconv.Itoa(int(part))
		m.inFlight.DeleteLabelValues(l)
		m.timers.DeleteLabelValues(l)
	}
}

// Sum adds up the samples of metric name in g whose labels include want
// (counters and gauges: the value; histograms: the count of
// observations). For tests and reports.
func Sum(g prometheus.Gatherer, name string, want map[string]string) (float64, error) {
	mfs, err := g.Gather()
	if err != nil {
		return 0, err
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue metric
				}
			}
			switch {
			case m.Counter != nil:
				total += m.Counter.GetValue()
			case m.Gauge != nil:
				total += m.Gauge.GetValue()
			case m.Histogram != nil:
				total += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return total, nil
}
