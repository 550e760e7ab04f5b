package api

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/stepwise-run/stepwise/client"
	"github.com/stepwise-run/stepwise/definitions"
	"github.com/stepwise-run/stepwise/internal/logkey"
	"github.com/stepwise-run/stepwise/internal/probe"
	"github.com/stepwise-run/stepwise/kconn"
	"github.com/stepwise-run/stepwise/metrics"
	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/statekey"
	"github.com/stepwise-run/stepwise/topology"
	"github.com/stepwise-run/stepwise/tracing"
	"github.com/stepwise-run/stepwise/view"
)

// Defaults of Config.
const (
	DefaultAddr    = "127.0.0.1:8080"
	DefaultMaxBody = 1 << 20 // bytes of a start's input
	DefaultMaxWait = 5 * time.Minute
	// seenWait is how long a start without ?wait waits for the view to
	// read the new request, so that the caller's next GET finds it.
	seenWait = 3 * time.Second
	// readyWait is how long a read waits for the view to catch up before
	// answering 503.
	readyWait = 10 * time.Second
	// rootWait is how long a status waits for the root record of a
	// request whose completion was read first.
	rootWait = time.Second
)

// Sentinel errors of New.
var ErrConfig = errors.New("stepwise: invalid API settings")

// Config of the API server. Conn is required.
type Config struct {
	Addr     string       // listen address; default DefaultAddr
	Listener net.Listener // used instead of Addr when set (tests)
	Conn     kconn.Config // brokers, TLS, SASL, topic prefix
	// Definitions holds the workflow versions the API shows and starts;
	// default: a catalogue the server keeps in step with the definitions
	// topic while it runs. Set, when given instead, is taken as version 1
	// of each of its workflows and nothing is followed (tools, tests).
	Definitions *definitions.Catalog
	Set         *topology.Set
	Logger      *slog.Logger

	MaxBody      int64         // largest start body, bytes; default DefaultMaxBody
	MaxWait      time.Duration // bound of ?wait; default DefaultMaxWait
	PreviewLimit int           // inline payload bound; default view.PreviewLimit

	// Sender produces starts and cancels; default: a Kafka producer on
	// Conn. ClientOpts are appended to every Kafka client built here.
	Sender     Sender
	ClientOpts []kgo.Opt

	// Tokens are the bearer tokens the API accepts (see ParseTokens).
	// Without any, calls need no token and New refuses a listen address
	// that is not loopback unless InsecureNoAuth is set.
	Tokens         *Tokens
	InsecureNoAuth bool

	// Metrics, when set, gets the API's metrics and its Kafka clients'
	// and is served at /metrics (package metrics lists them).
	Metrics *prometheus.Registry

	// Tracer, when set, traces each start call: a server span, child of
	// the call's W3C traceparent header if any, whose context the start
	// record carries to the processors (package tracing). Nil: no spans;
	// a start call's traceparent is still passed on.
	Tracer trace.TracerProvider
}

// Server is the HTTP API and web UI over a View. Create it with New and
// run it with Run.
type Server struct {
	cfg    Config
	log    *slog.Logger
	view   *view.View
	sender Sender
	mux    *http.ServeMux
	defs   *definitions.Catalog
	follow bool     // Run follows the definitions topic into defs
	dags   sync.Map // definitions key (name/version) -> DAG

	crossOrigin *http.CrossOriginProtection
	metrics     *metrics.API // nil: metrics off
	tracer      trace.Tracer // nil: tracing off
	routeScopes []routeScope // every guarded endpoint, in registration order
}

// routeScope is one API endpoint and the scope it needs.
type routeScope struct {
	Pattern string
	Scope   Scope
}

// Serve runs an API server with cfg until ctx ends.
func Serve(ctx context.Context, cfg Config) error {
	s, err := New(cfg)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

// New validates cfg and builds a server (and its producer, which connects
// lazily).
func New(cfg Config) (*Server, error) {
	if cfg.Conn.Prefix == "" {
		cfg.Conn.Prefix = topology.DefaultPrefix
	}
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = DefaultMaxWait
	}
	if cfg.PreviewLimit <= 0 {
		cfg.PreviewLimit = view.PreviewLimit
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if _, err := cfg.Conn.Opts(); err != nil {
		return nil, err
	}
	addr := cfg.Addr
	if cfg.Listener != nil {
		addr = cfg.Listener.Addr().String()
	}
	if err := checkBind(addr, cfg.Tokens, cfg.InsecureNoAuth); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, defs: cfg.Definitions, crossOrigin: http.NewCrossOriginProtection()}
	switch {
	case s.defs != nil:
	case cfg.Set != nil:
		s.defs = definitions.FromSet(cfg.Set)
	default:
		s.defs, s.follow = definitions.NewCatalog(), true
	}
	s.crossOrigin.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusForbidden, "cross-origin request refused: the API takes "+r.Method+" calls only from its own origin")
	}))
	// Each Kafka client gets its own metric hooks (kprom serves one
	// client each); none without metrics.
	viewOpts := append(slices.Clone(cfg.ClientOpts), metrics.KafkaHooks(metricsOrNil(cfg.Metrics), "api-view")...)
	s.view = view.New(cfg.Conn, view.WithLogger(cfg.Logger), view.WithClientOpts(viewOpts...))
	if cfg.Metrics != nil {
		s.metrics = metrics.NewAPI(cfg.Metrics, s.view.Len)
	}
	if cfg.Tracer != nil {
		s.tracer = cfg.Tracer.Tracer(tracing.ScopeName)
	}
	s.sender = cfg.Sender
	if s.sender == nil {
		senderOpts := append(slices.Clone(cfg.ClientOpts), metrics.KafkaHooks(metricsOrNil(cfg.Metrics), "api-sender")...)
		cs, err := newSender(cfg.Conn, senderOpts...)
		if err != nil {
			return nil, err
		}
		s.sender = cs
	}
	s.routes()
	return s, nil
}

// View returns the server's view of requests.
func (s *Server) View() *view.View { return s.view }

// Handler returns the server's HTTP handler (API and UI).
func (s *Server) Handler() http.Handler { return s.mux }

// Run reads the view and serves HTTP until ctx ends, then shuts down
// (waiting up to 5 s for requests in flight; event streams are ended).
func (s *Server) Run(ctx context.Context) error {
	defer s.sender.Close()
	ln := s.cfg.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", s.cfg.Addr); err != nil {
			return fmt.Errorf("stepwise: API listen: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	viewErr := make(chan error, 1)
	go func() { viewErr <- s.view.Run(ctx) }()
	if s.follow {
		opts, _ := s.cfg.Conn.Opts() // validated in New
		f, err := definitions.NewFollower(append(opts, s.cfg.ClientOpts...), s.cfg.Conn.Prefix, s.defs, s.log)
		if err != nil {
			return err
		}
		defer f.Close()
		go func() { _ = f.Run(ctx) }()
	}

	srv := &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Serve(ln) }()
	s.log.Info("API and web UI listening", "addr", "http://"+ln.Addr().String())

	var err error
	select {
	case <-ctx.Done():
	case err = <-viewErr:
	case err = <-srvErr:
	}
	cancel()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	_ = srv.Shutdown(sctx)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

//go:embed openapi.json
var openAPI []byte

//go:embed web/static
var webFiles embed.FS

func (s *Server) routes() {
	m := http.NewServeMux()
	// Every endpoint needs a scope (see guard); the list in docs/api.md
	// and the auth tests follow this table.
	for _, rt := range []struct {
		pattern string
		scope   Scope
		h       http.HandlerFunc
	}{
		{"GET /api/v1/openapi.json", ScopeRead, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(openAPI)
		}},
		{"GET /api/v1/stats", ScopeRead, s.stats},
		{"GET /api/v1/workflows", ScopeRead, s.listWorkflows},
		{"GET /api/v1/workflows/{name}", ScopeRead, s.showWorkflow},
		{"GET /api/v1/workflows/{name}/versions", ScopeRead, s.listVersions},
		{"GET /api/v1/workflows/{name}/diff", ScopeRead, s.diffVersions},
		{"POST /api/v1/workflows/{name}/requests", ScopeStart, s.start},
		{"GET /api/v1/requests", ScopeRead, s.listRequests},
		{"GET /api/v1/requests/{id}", ScopeRead, s.status},
		{"GET /api/v1/requests/{id}/payload", ScopeRead, s.payload},
		{"GET /api/v1/requests/{id}/events", ScopeRead, s.events},
		{"GET /api/v1/requests/{id}/history", ScopeRead, s.history},
		{"POST /api/v1/requests/{id}/cancel", ScopeOperate, s.cancel},
		{"POST /api/v1/requests/{id}/retry", ScopeOperate, s.retry},
		{"POST /api/v1/requests/{id}/signals/{name}", ScopeOperate, s.signal},
	} {
		m.Handle(rt.pattern, s.metrics.Wrap(rt.pattern, s.guard(rt.scope, rt.h)))
		s.routeScopes = append(s.routeScopes, routeScope{rt.pattern, rt.scope})
	}
	m.Handle("GET /api/v1/auth", s.crossOrigin.Handler(http.HandlerFunc(s.identity)))
	probe.Register(m, s.ready, s.cfg.Metrics)
	m.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such API endpoint: "+r.Method+" "+r.URL.Path+"; see /api/v1/openapi.json")
	})
	static, err := fs.Sub(webFiles, "web/static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.FileServerFS(static)
	m.Handle("/", secure(files))
	s.mux = m
}

// metricsOrNil returns reg as a Registerer, nil (not a nil pointer in an
// interface) when reg is nil.
func metricsOrNil(reg *prometheus.Registry) prometheus.Registerer {
	if reg == nil {
		return nil
	}
	return reg
}

// ready is the API's readiness: its view has read the state topic to the
// end it saw at start-up.
func (s *Server) ready() error {
	select {
	case <-s.view.Ready():
		return nil
	default:
		return view.ErrNotReady
	}
}

// secure adds the headers that keep the UI's data from being run as code:
// scripts only from this origin, no inline script, no framing.
func secure(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	})
}

// apiError is the body of every error answer.
type apiError struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, apiError{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

// waitReady waits for the view to catch up; false (and a 503 written)
// when it did not in time.
func (s *Server) waitReady(w http.ResponseWriter, r *http.Request) bool {
	t := time.NewTimer(readyWait)
	defer t.Stop()
	select {
	case <-s.view.Ready():
		return true
	case <-t.C:
	case <-r.Context().Done():
	}
	w.Header().Set("Retry-After", "2")
	writeError(w, http.StatusServiceUnavailable, view.ErrNotReady.Error())
	return false
}

func (s *Server) stats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.view.Stats())
}

// WorkflowSummary is one row of GET /api/v1/workflows.
type WorkflowSummary struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
	File      string `json:"file,omitempty"`
	Version   int    `json:"version"` // the definition version shown (the newest unless ?version=)
	Hash      string `json:"hash,omitempty"`
	Steps     int    `json:"steps"` // steps of every graph, tasks included
	Tasks     int    `json:"tasks"`
}

// WorkflowDetail is GET /api/v1/workflows/{name}.
type WorkflowDetail struct {
	WorkflowSummary
	Definition Definition `json:"definition"`
	DAG        DAG        `json:"dag"`
}

// Definition is a compiled workflow as JSON.
type Definition struct {
	Steps []StepDef `json:"steps"`
	Tasks []TaskDef `json:"tasks,omitempty"`
}

// StepDef is one step of a definition.
type StepDef struct {
	Name    string   `json:"name"`
	Depends []string `json:"depends"`
	Queue   string   `json:"queue,omitempty"`
	Task    string   `json:"task,omitempty"`
	Retry   *Retry   `json:"retry,omitempty"`
	Timeout string   `json:"timeout,omitempty"`
}

// Retry is a step's retry policy.
type Retry struct {
	MaxAttempts int     `json:"maxAttempts"`
	Initial     string  `json:"initial"`
	Max         string  `json:"max"`
	Multiplier  float64 `json:"multiplier"`
}

// TaskDef is one fan-out task of a definition.
type TaskDef struct {
	Name        string    `json:"name"`
	ItemListKey string    `json:"itemListKey"`
	ItemKey     string    `json:"itemKey"`
	Steps       []StepDef `json:"steps"`
}

func stepDefs(g *topology.Graph) []StepDef {
	out := make([]StepDef, 0, len(g.Steps))
	for _, st := range g.Steps {
		d := StepDef{Name: st.Name, Depends: st.Depends, Queue: st.Queue}
		if st.Task != nil {
			d.Task = st.Task.Name
		} else {
			d.Retry = &Retry{MaxAttempts: st.Retry.MaxAttempts, Initial: st.Retry.Initial.String(),
				Max: st.Retry.Max.String(), Multiplier: st.Retry.Multiplier}
		}
		if st.Timeout > 0 {
			d.Timeout = st.Timeout.String()
		}
		out = append(out, d)
	}
	return out
}

func summarize(w *topology.Workflow, version int, hash string) WorkflowSummary {
	n := len(w.Graph.Steps)
	for _, t := range w.Tasks {
		n += len(t.Graph.Steps)
	}
	return WorkflowSummary{Name: w.Name, Namespace: w.Namespace, File: w.File, Version: version, Hash: hash, Steps: n, Tasks: len(w.Tasks)}
}

func (s *Server) listWorkflows(w http.ResponseWriter, _ *http.Request) {
	out := []WorkflowSummary{}
	current := s.defs.Current()
	for _, name := range current.Order {
		e, _ := s.defs.Newest(name)
		out = append(out, summarize(current.Workflows[name], e.Version, e.Hash))
	}
	writeJSON(w, http.StatusOK, map[string]any{"workflows": out})
}

// dagOf returns the DAG of a workflow version, built once.
func (s *Server) dagOf(w *topology.Workflow, version int) DAG {
	key := definitions.KeyOf(w.Name, version)
	if d, ok := s.dags.Load(key); ok {
		return d.(DAG)
	}
	d := WorkflowDAG(w)
	s.dags.Store(key, d)
	return d
}

// versionParam reads ?NAME= as a definition version; 0 when absent.
func versionParam(r *http.Request, name string) (int, string) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, ""
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Sprintf("invalid %s %q: give a version number (1, 2, ...)", name, v)
	}
	return n, ""
}

// resolveError answers a failed definitions lookup: 404 for an unknown
// workflow or version, 410 for a deleted workflow.
func (s *Server) resolveError(w http.ResponseWriter, name string, err error) {
	switch {
	case errors.Is(err, definitions.ErrUnknownWorkflow):
		writeError(w, http.StatusNotFound, s.unknownWorkflow(name))
	case errors.Is(err, definitions.ErrDeleted):
		writeError(w, http.StatusGone, strings.TrimPrefix(err.Error(), "stepwise: "))
	default:
		writeError(w, http.StatusNotFound, strings.TrimPrefix(err.Error(), "stepwise: "))
	}
}

func (s *Server) showWorkflow(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	version, msg := versionParam(r, "version")
	if msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	wf, version, err := s.defs.Resolve(name, version)
	if err != nil {
		s.resolveError(w, name, err)
		return
	}
	e, _ := s.defs.Entry(name, version)
	d := WorkflowDetail{WorkflowSummary: summarize(wf, version, e.Hash), DAG: s.dagOf(wf, version)}
	d.Definition.Steps = stepDefs(wf.Graph)
	names := make([]string, 0, len(wf.Tasks))
	for n := range wf.Tasks {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		t := wf.Tasks[n]
		d.Definition.Tasks = append(d.Definition.Tasks, TaskDef{Name: t.Name, ItemListKey: t.ItemListKey, ItemKey: t.ItemKey, Steps: stepDefs(t.Graph)})
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *Server) unknownWorkflow(name string) string {
	return fmt.Sprintf("unknown workflow %q (known: %s)", name, strings.Join(s.defs.Current().Order, ", "))
}

// VersionInfo is one version of a workflow, in GET .../versions.
type VersionInfo struct {
	Version int       `json:"version"`
	Hash    string    `json:"hash,omitempty"`
	File    string    `json:"file,omitempty"`
	Applied time.Time `json:"applied"`
	Deleted bool      `json:"deleted,omitempty"`
	Problem string    `json:"problem,omitempty"` // why it does not load
}

func (s *Server) listVersions(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	entries := s.defs.Versions(name)
	if len(entries) == 0 {
		writeError(w, http.StatusNotFound, s.unknownWorkflow(name))
		return
	}
	out := make([]VersionInfo, 0, len(entries))
	for _, e := range entries {
		out = append(out, VersionInfo{Version: e.Version, Hash: e.Hash, File: e.File, Applied: e.Applied, Deleted: e.Deleted, Problem: e.Problem})
	}
	writeJSON(w, http.StatusOK, map[string]any{"workflow": name, "versions": out})
}

// VersionDiff is GET .../diff?from=N&to=M: a unified diff of the two
// versions' canonical sources.
type VersionDiff struct {
	Workflow string `json:"workflow"`
	From     int    `json:"from"`
	To       int    `json:"to"`
	Diff     string `json:"diff"` // empty when equal
}

func (s *Server) diffVersions(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	from, msg := versionParam(r, "from")
	if msg == "" && from == 0 {
		msg = "give ?from=N&to=M"
	}
	to, msg2 := versionParam(r, "to")
	if msg == "" {
		msg = msg2
	}
	if msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	a, ok := s.defs.Entry(name, from)
	b, ok2 := s.defs.Entry(name, to)
	if to == 0 {
		b, ok2 = s.defs.Newest(name)
	}
	if !ok || !ok2 {
		writeError(w, http.StatusNotFound, fmt.Sprintf("workflow %q has no version %d or %d", name, from, to))
		return
	}
	writeJSON(w, http.StatusOK, VersionDiff{Workflow: name, From: a.Version, To: b.Version,
		Diff: definitions.Diff(definitions.KeyOf(name, a.Version), a.Source, definitions.KeyOf(name, b.Version), b.Source)})
}

// Accepted is the answer to a start that has not finished (yet).
type Accepted struct {
	ID       string `json:"id"`
	Workflow string `json:"workflow"`
	Status   string `json:"status"`
	URL      string `json:"url"` // the status document
}

// idHeader carries a client-chosen request id on a start, as ?id= does.
const idHeader = "Idempotency-Key"

func (s *Server) start(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	version, msg := versionParam(r, "version")
	if msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	wf, _, err := s.defs.Resolve(name, version)
	if err != nil {
		s.resolveError(w, name, err)
		return
	}
	q := r.URL.Query()
	id := q.Get("id")
	if id == "" {
		id = r.Header.Get(idHeader)
	}
	if id != "" {
		if err := client.ValidateID(id); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	var wait time.Duration
	if ws := q.Get("wait"); ws != "" {
		d, err := time.ParseDuration(ws)
		if err != nil || d < 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid wait %q: give a duration such as 30s", ws))
			return
		}
		wait = min(d, s.cfg.MaxWait)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("input is over the %d-byte limit", s.cfg.MaxBody))
			return
		}
		writeError(w, http.StatusBadRequest, "reading the body: "+err.Error())
		return
	}
	input, msg := checkInput(body)
	if msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	if !s.waitReady(w, r) {
		return
	}
	fresh := id == ""
	if fresh {
		id = client.NewID()
	}
	if !fresh {
		if old := s.view.Get(id); old != nil && old.Summary().Workflow != "" {
			if got := old.Summary().Workflow; got != wf.Name {
				writeError(w, http.StatusConflict, fmt.Sprintf("request %q already exists for workflow %q", id, got))
				return
			}
			s.answerStart(w, r, wf.Name, id, wait, http.StatusOK)
			return
		}
	}
	ctx, span := s.traceStart(r, wf.Name, id)
	defer span.End()
	if _, err := s.sender.Start(ctx, wf.Name, id, input, client.AtVersion(version)); err != nil {
		span.SetStatus(codes.Error, err.Error())
		if tooLarge(err) {
			writeError(w, http.StatusRequestEntityTooLarge, strings.TrimPrefix(err.Error(), "stepwise: "))
			return
		}
		s.log.Error("start not produced", logkey.Request, id, logkey.Workflow, wf.Name, logkey.Error, err)
		writeError(w, http.StatusServiceUnavailable, "the start could not be written to Kafka: "+err.Error())
		return
	}
	s.answerStart(w, r, wf.Name, id, wait, http.StatusAccepted)
}

// tooLarge tells a start the topic cannot take: refused by the client
// before producing (the limit derived from the topic's max.message.bytes),
// or by the broker when its own limit is lower still.
func tooLarge(err error) bool {
	return errors.Is(err, client.ErrTooLarge) || errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge)
}

// answerStart waits per ?wait (or briefly, until the view has read the
// request) and answers with the completion, or Accepted.
// traceStart returns the context a start is sent with: the call's
// traceparent header as the parent, and the API's span when it traces.
// The span is a no-op one when tracing is off.
func (s *Server) traceStart(r *http.Request, workflow, id string) (context.Context, trace.Span) {
	ctx := r.Context()
	if sc, ok := tracing.Parse(r.Header.Get(schemas.HeaderTraceparent)); ok {
		ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
	}
	if s.tracer == nil {
		return ctx, trace.SpanFromContext(context.Background()) // a no-op span; ctx keeps the caller's
	}
	return s.tracer.Start(ctx, "POST /api/v1/workflows/{name}/requests", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String(tracing.KeyWorkflow, workflow), attribute.String(tracing.KeyRequest, id)))
}

func (s *Server) answerStart(w http.ResponseWriter, r *http.Request, workflow, id string, wait time.Duration, code int) {
	loc := "/api/v1/requests/" + id
	w.Header().Set("Location", loc)
	if wait > 0 {
		req, ok := s.view.WaitFor(r.Context(), id, wait, func(q *view.Request) bool {
			_, done := q.Finished()
			return done
		})
		if ok {
			c, _ := req.Completion()
			writeJSON(w, http.StatusOK, c)
			return
		}
		writeJSON(w, http.StatusAccepted, Accepted{ID: id, Workflow: workflow, Status: string(schemas.Running), URL: loc})
		return
	}
	req, _ := s.view.WaitFor(r.Context(), id, seenWait, func(q *view.Request) bool { return q != nil && q.Summary().Workflow != "" })
	status := string(schemas.Running)
	if req != nil && req.Summary().Status != "" {
		status = req.Summary().Status
	}
	writeJSON(w, code, Accepted{ID: id, Workflow: workflow, Status: status, URL: loc})
}

// checkInput returns body as a start's input (an empty body is {}), or why
// it is not a JSON object.
func checkInput(body []byte) (json.RawMessage, string) {
	trimmed := strings.TrimSpace(string(body))
	if trimmed == "" {
		return json.RawMessage("{}"), ""
	}
	if !json.Valid(body) {
		var v any
		err := json.Unmarshal(body, &v)
		return nil, "input is not valid JSON: " + err.Error()
	}
	if trimmed[0] != '{' {
		return nil, "input must be a JSON object, not " + jsonKind(trimmed[0])
	}
	return json.RawMessage(trimmed), ""
}

func jsonKind(c byte) string {
	switch c {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

// requestOr404 returns the view's request id, or writes 404 (or 503 while
// the view catches up) and returns nil.
func (s *Server) requestOr404(w http.ResponseWriter, r *http.Request) *view.Request {
	id := r.PathValue("id")
	if req := s.view.Get(id); req != nil && req.Summary().Workflow != "" {
		return req
	}
	if !s.waitReady(w, r) {
		return nil
	}
	if req := s.view.Get(id); req != nil && req.Summary().Workflow != "" {
		return req
	}
	writeError(w, http.StatusNotFound, fmt.Sprintf("unknown request %q (never started, or forgotten after its retention)", id))
	return nil
}

func (s *Server) statusOptions(r *http.Request) (view.StatusOptions, string) {
	o := view.StatusOptions{PreviewLimit: s.cfg.PreviewLimit, Instances: 100}
	if v := r.URL.Query().Get("instances"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 10000 {
			return o, "invalid instances " + strconv.Quote(v) + ": give a number from 0 to 10000"
		}
		o.Instances = n
	}
	return o, ""
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	o, msg := s.statusOptions(r)
	if msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	req := s.requestOr404(w, r)
	if req == nil {
		return
	}
	if !req.HasRoot() {
		// Only the completion was read: the state records of the same
		// transaction are on another topic and follow at once.
		req, _ = s.view.WaitFor(r.Context(), req.ID(), rootWait, func(q *view.Request) bool { return q == nil || q.HasRoot() })
		if req == nil {
			writeError(w, http.StatusNotFound, fmt.Sprintf("unknown request %q (forgotten after its retention)", r.PathValue("id")))
			return
		}
	}
	writeJSON(w, http.StatusOK, view.BuildStatus(req, s.defs, o))
}

func (s *Server) listRequests(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 50
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("%v %q: give a number from 1 to 1000", view.ErrLimit, v))
			return
		}
		limit = n
	}
	// Check the parameters before waiting for the view.
	if err := view.ValidateList(q.Get("status"), q.Get("cursor"), limit); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !s.waitReady(w, r) {
		return
	}
	out, err := s.view.List(q.Get("workflow"), q.Get("status"), q.Get("cursor"), limit)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) payload(w http.ResponseWriter, r *http.Request) {
	req := s.requestOr404(w, r)
	if req == nil {
		return
	}
	q := r.URL.Query()
	var raw json.RawMessage
	var what string
	if step := q.Get("step"); step != "" {
		what = "step " + strconv.Quote(step)
		inst, name := statekey.SplitStep(step)
		if rec := req.Instance(inst); rec != nil && rec.Steps[name] != nil {
			raw = rec.Steps[name].Output
		}
	} else {
		part := q.Get("part")
		inst := q.Get("instance")
		what = "request " + part
		if inst != "" {
			what = "instance " + strconv.Quote(inst) + " " + part
		}
		switch part {
		case "input", "output":
		default:
			writeError(w, http.StatusBadRequest, "give ?step=PATH, or ?part=input|output with an optional &instance=PATH")
			return
		}
		if c, ok := req.Completion(); inst == "" && !req.HasRoot() && part == "output" && ok {
			raw = c.Output
		} else if rec := req.Instance(inst); rec != nil {
			raw = rec.Input
			if part == "output" {
				raw = rec.Output
			}
		}
	}
	if len(raw) == 0 {
		writeError(w, http.StatusNotFound, "no payload for "+what+" of request "+strconv.Quote(req.ID())+" (not produced yet, or dropped when its instance finished)")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Disposition", "inline")
	_, _ = w.Write(raw)
}

// cancelBodyIn is the optional body of POST .../cancel.
type cancelBodyIn struct {
	Reason string `json:"reason"`
}

func (s *Server) cancel(w http.ResponseWriter, r *http.Request) {
	var in cancelBodyIn
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, "cancel body is over 64 KiB")
			return
		}
		writeError(w, http.StatusBadRequest, "reading the body: "+err.Error())
		return
	}
	if strings.TrimSpace(string(body)) != "" {
		if err := json.Unmarshal(body, &in); err != nil {
			writeError(w, http.StatusBadRequest, `cancel body must be {"reason": "..."}: `+err.Error())
			return
		}
	}
	req := s.requestOr404(w, r)
	if req == nil {
		return
	}
	if st, done := req.Finished(); done {
		writeError(w, http.StatusConflict, fmt.Sprintf("request %q already %s", req.ID(), st))
		return
	}
	if err := s.sender.Cancel(r.Context(), req.ID(), in.Reason); err != nil {
		writeError(w, http.StatusServiceUnavailable, "the cancel could not be written to Kafka: "+err.Error())
		return
	}
	writeJSON(w, http.StatusAccepted, Accepted{ID: req.ID(), Workflow: req.Summary().Workflow, Status: "cancelling", URL: "/api/v1/requests/" + req.ID()})
}

// Attempt is one attempt of one step, in GET .../history.
type Attempt struct {
	Step    string `json:"step"` // step path
	Attempt int    `json:"attempt"`
	Outcome string `json:"outcome"` // the step's status for its latest attempt; failed or cancelled for earlier ones
	Error   string `json:"error,omitempty"`
	Worker  string `json:"worker,omitempty"` // the worker instance that answered, when it said
	// OutputBytes is the size of the output of a step's latest attempt
	// once it succeeded (GET /requests/{id} has the output itself).
	OutputBytes int        `json:"outputBytes,omitempty"`
	Started     *time.Time `json:"started,omitempty"`
	Ended       *time.Time `json:"ended,omitempty"`
}

// History is GET /api/v1/requests/{id}/history: every attempt of every
// step of the request and its live fan-out children, by step path then
// attempt, a page of at most limit from offset.
type History struct {
	ID       string    `json:"id"`
	Run      int       `json:"run"`
	Total    int       `json:"total"`
	Offset   int       `json:"offset"`
	Attempts []Attempt `json:"attempts"`
	Dropped  int       `json:"dropped,omitempty"` // earlier attempts not kept (beyond the bound per step)
}

func (s *Server) history(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	offset, limit := 0, 100
	for name, v := range map[string]*int{"offset": &offset, "limit": &limit} {
		if raw := q.Get(name); raw != "" {
			n, err := strconv.Atoi(raw)
			if err != nil || n < 0 || name == "limit" && (n < 1 || n > 1000) {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid %s %q: offset >= 0, limit 1 to 1000", name, raw))
				return
			}
			*v = n
		}
	}
	req := s.requestOr404(w, r)
	if req == nil {
		return
	}
	h := History{ID: req.ID(), Offset: offset, Attempts: []Attempt{}}
	var all []Attempt
	for _, rec := range req.Records() {
		if rec.Path == "" {
			h.Run = rec.Run()
		}
		for _, name := range slices.Sorted(maps.Keys(rec.Steps)) {
			ss := rec.Steps[name]
			path := statekey.StepPath(rec.Path, name)
			h.Dropped += ss.EarlierDropped
			for _, a := range ss.Earlier {
				all = append(all, Attempt{Step: path, Attempt: a.Attempt, Outcome: a.Outcome, Error: a.Error, Worker: a.Worker, Started: optTime(a.Started), Ended: optTime(a.Ended)})
			}
			if ss.Attempt > 0 {
				all = append(all, Attempt{Step: path, Attempt: ss.Attempt, Outcome: string(ss.Status), Error: ss.Error, Worker: ss.Worker,
					OutputBytes: len(ss.Output), Started: optTime(ss.Started), Ended: optTime(ss.Ended)})
			}
		}
	}
	h.Total = len(all)
	if offset < len(all) {
		h.Attempts = all[offset:min(len(all), offset+limit)]
	}
	writeJSON(w, http.StatusOK, h)
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// retryBodyIn is the optional body of POST .../retry.
type retryBodyIn struct {
	From string `json:"from"`
}

// retry asks for a failed or cancelled request to run again (only what did
// not succeed, or from a top-level step on): 404 for an unknown request,
// 409 for one running or succeeded, 400 for a step it cannot run from.
func (s *Server) retry(w http.ResponseWriter, r *http.Request) {
	var in retryBodyIn
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		writeError(w, http.StatusBadRequest, "reading the body: "+err.Error())
		return
	}
	if strings.TrimSpace(string(body)) != "" {
		if err := json.Unmarshal(body, &in); err != nil {
			writeError(w, http.StatusBadRequest, `retry body must be {"from": "step"} or empty: `+err.Error())
			return
		}
	}
	req := s.requestOr404(w, r)
	if req == nil {
		return
	}
	root := req.Instance("")
	if root == nil || (root.Status != schemas.StatusFailed && root.Status != schemas.StatusCancelled) {
		st := "running"
		if root != nil {
			st = string(root.Status)
		}
		writeError(w, http.StatusConflict, fmt.Sprintf("request %q is %s; only a failed or cancelled request can be retried", req.ID(), st))
		return
	}
	if in.From != "" {
		wf, _, err := s.defs.Resolve(root.Workflow, root.DefinitionVersion())
		if err != nil {
			writeError(w, http.StatusConflict, "cannot retry: "+strings.TrimPrefix(err.Error(), "stepwise: "))
			return
		}
		if _, err := wf.Graph.RetryFrom(in.From); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	if err := s.sender.Retry(r.Context(), req.ID(), root.Run(), in.From); err != nil {
		writeError(w, http.StatusServiceUnavailable, "the retry could not be written to Kafka: "+err.Error())
		return
	}
	writeJSON(w, http.StatusAccepted, Accepted{ID: req.ID(), Workflow: root.Workflow, Status: "retrying", URL: "/api/v1/requests/" + req.ID()})
}

// events streams a request's status document as server-sent events: one
// "status" event at once and after changes (at most every 200 ms), "end"
// once it finished, "gone" if it is forgotten.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	o, msg := s.statusOptions(r)
	if msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	req := s.requestOr404(w, r)
	if req == nil {
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "streaming is not supported by this connection")
		return
	}
	changes, unsubscribe := s.view.Subscribe(req.ID())
	defer unsubscribe()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	send := func(event string, v any) bool {
		b, _ := json.Marshal(v)
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b); err != nil {
			return false
		}
		fl.Flush()
		return true
	}
	heartbeat := time.NewTicker(15 * time.Second)
	defer heartbeat.Stop()
	var last uint64
	for {
		cur := s.view.Get(req.ID())
		if cur == nil || cur.Summary().Workflow == "" {
			send("gone", apiError{Error: "request " + strconv.Quote(req.ID()) + " was forgotten"})
			return
		}
		if cur.Seq() != last || last == 0 {
			last = cur.Seq()
			if !send("status", view.BuildStatus(cur, s.defs, o)) {
				return
			}
			if _, done := cur.Finished(); done {
				send("end", map[string]string{"status": cur.Summary().Status})
				return
			}
		}
		select {
		case <-r.Context().Done():
			return
		case <-heartbeat.C:
			if _, err := io.WriteString(w, ": keep-alive\n\n"); err != nil {
				return
			}
			fl.Flush()
		case <-changes:
			// Coalesce bursts: a fan-out changes many records at once.
			select {
			case <-time.After(200 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
	}
}
