package metrics

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/internal/logkey"
)

// API is the HTTP API's set. Methods on a nil *API do nothing.
type API struct {
	requests  *prometheus.CounterVec
	durations *prometheus.HistogramVec
}

// NewAPI registers the API's metrics on reg; viewSize reports how many
// requests the view holds, read at each scrape.
func NewAPI(reg prometheus.Registerer, viewSize func() int) *API {
	f := promauto.With(reg)
	f.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "api_view_requests", Help: "Requests held by the API's view."},
		func() float64 { return float64(viewSize()) })
	return &API{
		requests: f.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "api_requests_total", Help: "HTTP API calls answered, by route pattern and status code."}, []string{"route", "code"}),
		durations: f.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "api_request_duration_seconds",
			Help: "Time to answer an HTTP API call (event streams: until they end).", Buckets: durationBuckets}, []string{"route"}),
	}
}

// Wrap counts the calls of one route (its pattern is the label).
func (m *API) Wrap(route string, h http.Handler) http.Handler {
	if m == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		cw := &codeWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(cw, r)
		m.requests.WithLabelValues(route, strconv.Itoa(cw.code)).Inc()
		m.durations.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

// codeWriter remembers the status code written.
type codeWriter struct {
	http.ResponseWriter
	code int
}

func (c *codeWriter) WriteHeader(code int) {
	c.code = code
	c.ResponseWriter.WriteHeader(code)
}

// Flush passes flushes on, for event streams.
func (c *codeWriter) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (c *codeWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// Worker is the Go worker SDK's set. Methods on a nil *Worker do nothing.
type Worker struct {
	tasks     *prometheus.CounterVec
	durations *prometheus.HistogramVec
	wait      *prometheus.HistogramVec
	inFlight  *prometheus.GaugeVec
}

// NewWorker registers the worker metrics on reg. Several workers of one
// process may share reg: they share the metrics.
func NewWorker(reg prometheus.Registerer) *Worker {
	return &Worker{
		tasks: shared(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "worker_tasks_total",
			Help: "Tasks handled, by outcome (succeeded, failed, retryable)."}, []string{"queue", "step", "outcome"})),
		durations: shared(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "worker_task_duration_seconds",
			Help: "Time the handler ran.", Buckets: durationBuckets}, []string{"queue", "step"})),
		wait: shared(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "worker_queue_wait_seconds",
			Help: "Time from a task's dispatch (its record's timestamp) to its handler's start.", Buckets: durationBuckets}, []string{"queue"})),
		inFlight: shared(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "worker_tasks_in_flight", Help: "Tasks whose handler is running."}, []string{"queue"})),
	}
}

// shared registers c on reg, or returns the equal collector registered
// before.
func shared[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if old, ok := are.ExistingCollector.(C); ok {
				return old
			}
		}
		panic(err)
	}
	return c
}

// Started records a handler starting on a task dispatched at dispatched,
// and returns the function to call when it ends, with its outcome.
func (m *Worker) Started(queue, step string, dispatched time.Time) func(outcome string) {
	if m == nil {
		return func(string) {}
	}
	start := time.Now()
	if !dispatched.IsZero() {
		m.wait.WithLabelValues(queue).Observe(max(start.Sub(dispatched), 0).Seconds())
	}
	g := m.inFlight.WithLabelValues(queue)
	g.Inc()
	step = StepLabel(step)
	return func(outcome string) {
		g.Dec()
		m.durations.WithLabelValues(queue, step).Observe(time.Since(start).Seconds())
		m.tasks.WithLabelValues(queue, step, outcome).Inc()
	}
}

// LagInterval is how often LagCollector asks the brokers.
const LagInterval = 10 * time.Second

// LagCollector keeps stepwise_consumer_lag up to date for a fixed list of
// groups (the processors' and every worker queue's).
//
// Lag is counted in records, not offsets: a topic written in transactions
// (the task topics) has a commit marker after each transaction's records,
// which takes an offset but is never consumed, so a group that consumed
// everything still sits one offset or more behind the end. Where the
// offset gap of a partition is small (at most exactMax), the records in it
// are read (read_committed) and counted; larger gaps are reported as
// offsets, which overstates them by the markers among them.
type LagCollector struct {
	adm    *kadm.Client
	opts   []kgo.Opt // to read the small gaps
	groups []string
	lag    *prometheus.GaugeVec
	log    *slog.Logger
}

// exactMax is the largest offset gap LagCollector reads to count records.
const exactMax = 64

// NewLagCollector registers stepwise_consumer_lag on reg; opts connect a
// client that reads small gaps.
func NewLagCollector(reg prometheus.Registerer, adm *kadm.Client, opts []kgo.Opt, groups []string, log *slog.Logger) *LagCollector {
	return &LagCollector{adm: adm, opts: opts, groups: groups, log: log,
		lag: promauto.With(reg).NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "consumer_lag",
			Help: "Records of a topic not yet consumed by a group, summed over partitions."}, []string{"group", "topic"})}
}

// Run polls until ctx ends.
func (c *LagCollector) Run(ctx context.Context) {
	t := time.NewTicker(LagInterval)
	defer t.Stop()
	for {
		c.Poll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Poll asks the brokers once and sets the gauges.
func (c *LagCollector) Poll(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, LagInterval)
	defer cancel()
	lags, err := c.adm.Lag(pctx, c.groups...)
	if err != nil {
		c.log.Debug("consumer lag not read", logkey.Error, err)
		return
	}
	// Small gaps to count exactly: topic -> partition -> [from, end).
	gaps := map[string]map[int32][2]int64{}
	for _, gl := range lags {
		if gl.Error() != nil {
			continue
		}
		for topic, parts := range gl.Lag {
			for part, ml := range parts {
				if ml.Err == nil && ml.Lag > 0 && ml.Lag <= exactMax {
					if gaps[topic] == nil {
						gaps[topic] = map[int32][2]int64{}
					}
					gaps[topic][part] = [2]int64{ml.Commit.At, ml.End.Offset}
				}
			}
		}
	}
	counted := c.countRecords(pctx, gaps)
	for group, gl := range lags {
		if gl.Error() != nil {
			c.log.Debug("consumer lag not read", "group", group, logkey.Error, gl.Error())
			continue
		}
		for topic, parts := range gl.Lag {
			total := int64(0)
			for part, ml := range parts {
				if ml.Err != nil {
					continue
				}
				n := ml.Lag
				if g, ok := gaps[topic][part]; ok && g == [2]int64{ml.Commit.At, ml.End.Offset} {
					if got, ok := counted[topic][part]; ok {
						n = got
					}
				}
				total += n
			}
			c.lag.WithLabelValues(group, topic).Set(float64(total))
		}
	}
}

// countRecords reads each gap read_committed and counts the records in
// it; a partition it could not finish reading is left out.
func (c *LagCollector) countRecords(ctx context.Context, gaps map[string]map[int32][2]int64) map[string]map[int32]int64 {
	out := map[string]map[int32]int64{}
	if len(gaps) == 0 {
		return out
	}
	from := map[string]map[int32]kgo.Offset{}
	left := 0
	for topic, parts := range gaps {
		from[topic] = map[int32]kgo.Offset{}
		out[topic] = map[int32]int64{}
		for part, g := range parts {
			from[topic][part] = kgo.NewOffset().At(g[0])
			left++
		}
	}
	cl, err := kgo.NewClient(append(slices.Clone(c.opts), kgo.ConsumePartitions(from), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Markers are returned too, so that a gap of markers only is seen
		// to end; they are not counted.
		kgo.KeepControlRecords(), kgo.FetchMaxWait(100*time.Millisecond))...)
	if err != nil {
		return map[string]map[int32]int64{}
	}
	defer cl.Close()
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	done := map[string]map[int32]bool{}
	for left > 0 && rctx.Err() == nil {
		fs := cl.PollFetches(rctx)
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			g := gaps[p.Topic][p.Partition]
			last := int64(-1)
			for _, r := range p.Records {
				if r.Offset < g[1] && !r.Attrs.IsControl() {
					out[p.Topic][p.Partition]++
				}
				last = max(last, r.Offset)
			}
			if !done[p.Topic][p.Partition] && last >= g[1]-1 {
				if done[p.Topic] == nil {
					done[p.Topic] = map[int32]bool{}
				}
				done[p.Topic][p.Partition] = true
				left--
			}
		})
	}
	for topic, parts := range out {
		for part := range parts {
			if !done[topic][part] {
				delete(parts, part)
			}
		}
		for part := range gaps[topic] {
			if done[topic][part] {
				if _, ok := parts[part]; !ok {
					parts[part] = 0
				}
			}
		}
	}
	return out
}
