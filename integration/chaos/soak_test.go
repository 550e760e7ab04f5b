//go:build integration

package chaos

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/examples/idp"
	"github.com/stepwise-run/stepwise/processors"
	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/topology"
)

var (
	soakDuration = flag.Duration("duration", 2*time.Minute, "how long the load and the fault loop run")
	soakRequests = flag.Int("requests", 5000, "requests started over the run (5% fanout100, 15% idp, the rest linear3)")
	soakProcArgs = flag.String("processor-args", "", "extra flags of every `stepwise run`, space-separated (e.g. \"--txn-timeout 20s\")")
	soakBroken   = flag.Bool("broken", false, "build the processor with the chaosbroken tag (it keeps the state of aborted transactions): the soak must then fail")
)

// Settings of the soak.
const (
	startPartitions = 6
	replicas        = 3
	pauseFor        = 10 * time.Second // SIGSTOP: above the 6 s session and the 5 s transaction timeout
	drainFor        = 4 * time.Minute  // after the load, for the last requests to complete
)

// soak is one run: the cluster, the processes and what happened.
type soak struct {
	t      *testing.T
	ctx    context.Context
	dir    string
	c      *cluster
	prefix topology.Prefix
	conn   []string
	procs  []*proc
	comp   *completions
	idpOut json.RawMessage // the all-Go reference output of idp

	mu struct {
		sync.Mutex
		faults  map[string]int
		resumes []time.Time // takeover starts: processor kills and SIGSTOPs
		zombies []zombieTxn
	}
}

// TestChaosSoak runs the mixed load on three processor replicas and Go,
// Python and TypeScript workers while a fault loop kills, pauses and
// restarts processes and brokers and adds partitions; then the checker
// (check_test.go) reads completions and the workers' logs and prints the
// table. Run by hand for longer:
//
//	go test -tags integration ./integration/chaos/ -run TestChaosSoak -v -timeout 60m -duration 30m -requests 40000
func TestChaosSoak(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), *soakDuration+drainFor+10*time.Minute)
	defer cancel()
	s := &soak{t: t, ctx: ctx, dir: keptDir(t), prefix: topology.Prefix(fmt.Sprintf("chaos.%d.", time.Now().Unix()))}
	s.mu.faults = map[string]int{}
	bin, worker := s.build()
	s.idpOut = referenceIDP(t)
	s.c = startCluster(t)
	s.conn = []string{"--brokers", strings.Join(s.c.seeds, ","), "--prefix", string(s.prefix)}
	files := []string{"-f", "workflows.yaml", "-f", "../../examples/idp/workflows.yaml"}
	s.createTopics(bin, files)

	py, ts := pythonWorker(t), typescriptWorker(t)
	for i := range replicas {
		id := fmt.Sprintf("p%d", i+1)
		s.procs = append(s.procs, newProc(t, s.dir, "processor-"+id, "processor", nil,
			append(append(append([]string{bin, "run", "--replica-id", id, "--client-id", "chaos-" + id, "--log-level", "info"}, files...), s.conn...), strings.Fields(*soakProcArgs)...)...))
	}
	noLatency := []string{idp.LatencyEnv + "=0"}
	for i := range 2 {
		s.procs = append(s.procs, newProc(t, s.dir, fmt.Sprintf("worker-go-%d", i+1), "worker", nil, append([]string{worker}, s.conn...)...))
	}
	s.procs = append(s.procs,
		newProc(t, s.dir, "worker-python", "worker", noLatency, append([]string{py, "../../examples/idp/python/ocr.py", "--client-id", "chaos-ocr-python"}, s.conn...)...),
		newProc(t, s.dir, "worker-typescript", "worker", noLatency, append([]string{"node", ts}, s.conn...)...))
	t.Cleanup(func() {
		for _, p := range s.procs {
			p.signal(syscall.SIGTERM)
		}
		if t.Failed() {
			for _, p := range s.procs {
				t.Log(p.tail(25))
			}
		}
	})
	stopSupervisor := s.supervise()

	s.comp = watchCompletions(t, s.c.seeds, s.prefix)
	loadDone := make(chan []started, 1)
	go func() { loadDone <- s.load() }()
	s.faultLoop(time.Now().Add(*soakDuration))
	reqs := <-loadDone
	s.comp.waitFor(reqs, drainFor)
	stopSupervisor()

	r := s.check(reqs)
	t.Log("\n" + r.table())
	if err := r.verdict(); err != nil {
		t.Error(err)
	}
}

// keptDir is the run's directory (binaries, every process's log): removed
// after a pass, kept and named after a failure.
func keptDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "stepwise-chaos-run-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	return dir
}

// build builds the binary (tagged chaosbroken with -broken) and the Go
// worker.
func (s *soak) build() (bin, worker string) {
	s.t.Helper()
	bin, worker = filepath.Join(s.dir, "stepwise"), filepath.Join(s.dir, "chaosworker")
	tags := ""
	if *soakBroken {
		tags = "chaosbroken"
	}
	for out, pkg := range map[string]string{bin: "./cmd/stepwise", worker: "./integration/chaos/cmd/chaosworker"} {
		cmd := exec.Command("go", "build", "-tags", tags, "-o", out, pkg)
		cmd.Dir = "../.."
		if b, err := cmd.CombinedOutput(); err != nil {
			s.t.Fatalf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	return bin, worker
}

// pythonWorker returns the Python of sdk/python's venv (make -C
// sdk/python venv), typescriptWorker the built idp classify worker
// (built here when the SDK's node_modules are installed).
func pythonWorker(t *testing.T) string {
	py, _ := filepath.Abs("../../sdk/python/.venv/bin/python")
	if _, err := os.Stat(py); err != nil {
		t.Fatalf("the Python worker needs the SDK's venv: run make -C sdk/python venv (%v)", err)
	}
	return py
}

func typescriptWorker(t *testing.T) string {
	if out, err := exec.Command("make", "-s", "-C", "../../sdk/typescript", "build").CombinedOutput(); err != nil {
		t.Fatalf("the TypeScript worker needs the SDK built: make -C sdk/typescript deps build: %v\n%s", err, out)
	}
	js, _ := filepath.Abs("../../sdk/typescript/dist/examples/idp-classify.js")
	return js
}

// createTopics creates the plan with replication factor 3 (retried: a
// cluster that has just started may not list new topics at once).
func (s *soak) createTopics(bin string, files []string) {
	s.t.Helper()
	args := append(append([]string{"topics", "create", "--partitions", strconv.Itoa(startPartitions), "--replication-factor", "3"}, files...), s.conn...)
	for attempt := 1; ; attempt++ {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err == nil {
			return
		}
		if attempt == 5 {
			s.t.Fatalf("stepwise %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		time.Sleep(2 * time.Second)
	}
}

// supervise restarts processes that exit by themselves, every second,
// until the returned function is called.
func (s *soak) supervise() func() {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-done:
				return
			case <-time.After(time.Second):
			}
			for _, p := range s.procs {
				p.supervise()
			}
		}
	}()
	return func() { close(done); <-stopped }
}

// started is one request the load generator started, acknowledged by
// the cluster.
type started struct {
	id       string
	workflow string
	want     json.RawMessage
}

// load starts *soakRequests requests evenly over the run and returns
// those the cluster acknowledged.
func (s *soak) load() []started {
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.c.seeds...), kgo.ProducerLinger(5*time.Millisecond), kgo.MetadataMaxAge(10*time.Second))
	if err != nil {
		s.t.Error(err)
		return nil
	}
	defer cl.Close()
	every := *soakDuration / time.Duration(*soakRequests)
	var (
		mu  sync.Mutex
		out []started
		wg  sync.WaitGroup
	)
	next := time.Now()
	for i := range *soakRequests {
		next = next.Add(every)
		time.Sleep(time.Until(next))
		r := s.request(i)
		v, _ := json.Marshal(map[string]any{"type": "start", "workflow": r.workflow, "id": r.id, "input": json.RawMessage(input(r.workflow, i))})
		wg.Add(1)
		cl.Produce(s.ctx, &kgo.Record{Topic: s.prefix.Requests(), Key: []byte(r.id), Value: v}, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				s.t.Logf("start %s not acknowledged: %v", r.id, err)
				return
			}
			mu.Lock()
			out = append(out, r)
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// request is the i-th request of the mix and the output it must give.
func (s *soak) request(i int) started {
	id := fmt.Sprintf("chaos-%06d", i)
	switch i % 20 {
	case 0:
		return started{id, "fanout100", json.RawMessage(`{"joined":100,"sum":328350}`)}
	case 1, 2, 3:
		return started{id, idp.WorkflowName, s.idpOut}
	}
	return started{id, "linear3", json.RawMessage(input("linear3", i))}
}

// input is the start input of request i of workflow: linear3 echoes it.
func input(workflow string, i int) string {
	if workflow == "linear3" {
		return `{"n":` + strconv.Itoa(i) + `}`
	}
	return `{}`
}

// The kinds of fault the loop injects.
const (
	faultKillProcessor  = "kill -9 processor"
	faultKillWorker     = "kill -9 worker"
	faultKillBroker     = "kill -9 broker"
	faultPauseProcessor = "SIGSTOP processor (zombie)"
	faultRollingRestart = "rolling restart of brokers"
	faultAddPartitions  = "partitions added"
)

// faultLoop injects faults until the deadline: each kind once in a random
// order, then again in a new order, with 2-5 s between faults. Each fault
// is healed (process or broker back, cluster replicated) before the next.
func (s *soak) faultLoop(deadline time.Time) {
	kinds := []string{faultKillProcessor, faultKillWorker, faultKillBroker, faultPauseProcessor, faultRollingRestart, faultAddPartitions}
	parts := int32(startPartitions)
	for time.Now().Before(deadline) {
		rand.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
		for _, k := range kinds {
			time.Sleep(2*time.Second + rand.N(3*time.Second))
			if time.Now().After(deadline) || s.ctx.Err() != nil {
				return
			}
			s.t.Logf("%s fault: %s", time.Now().Format("15:04:05.000"), k)
			switch k {
			case faultKillProcessor:
				p := s.pick("processor")
				s.noteTakeover()
				p.signal(syscall.SIGKILL)
				time.Sleep(3 * time.Second)
				p.start()
			case faultKillWorker:
				p := s.pick("worker")
				p.signal(syscall.SIGKILL)
				time.Sleep(3 * time.Second)
				p.start()
			case faultKillBroker:
				n := rand.N(3)
				s.c.signal(n, syscall.SIGKILL)
				time.Sleep(10 * time.Second)
				s.c.start(n)
			case faultPauseProcessor:
				s.pause(s.pick("processor"))
			case faultRollingRestart:
				for n := range 3 {
					s.c.signal(n, syscall.SIGTERM)
					s.c.start(n)
				}
			case faultAddPartitions:
				parts += 3
				s.addPartitions(parts)
				// Go workers and processors pick up new partitions
				// by themselves; the Python and TypeScript SDKs need
				// a restart (docs/operations.md, "Adding partitions").
				time.Sleep(15 * time.Second)
				for _, p := range s.procs {
					if p.kind == "worker" && !strings.HasPrefix(p.name, "worker-go") {
						p.signal(syscall.SIGTERM)
						p.start()
					}
				}
			}
			s.mu.Lock()
			s.mu.faults[k]++
			s.mu.Unlock()
		}
	}
}

func (s *soak) pick(kind string) *proc {
	var ps []*proc
	for _, p := range s.procs {
		if p.kind == kind {
			ps = append(ps, p)
		}
	}
	return ps[rand.N(len(ps))]
}

func (s *soak) noteTakeover() {
	s.mu.Lock()
	s.mu.resumes = append(s.mu.resumes, time.Now())
	s.mu.Unlock()
}

// zombieTxn is the transaction a paused processor had open: producer id
// and epoch, and the last stable offset of each of its partitions when it
// froze. None of its records may ever become visible.
type zombieTxn struct {
	replica string
	pid     int64
	epoch   int16
	lso     map[string]map[int32]int64
}

// pause freezes p for longer than its session and transaction timeouts,
// notes the transaction it had open, and lets it run again: a zombie that
// must find itself fenced.
func (s *soak) pause(p *proc) {
	s.noteTakeover()
	p.signal(syscall.SIGSTOP)
	defer p.signal(syscall.SIGCONT)
	frozen := time.Now()
	adm := s.c.admin()
	defer adm.Close()
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	replica := strings.TrimPrefix(p.name, "processor-")
	txid := processors.TransactionalID(s.prefix, replica)
	txns, err := adm.DescribeTransactions(ctx, txid)
	if d, ok := txns[txid]; err == nil && ok && d.State == "Ongoing" {
		z := zombieTxn{replica: replica, pid: d.ProducerID, epoch: d.ProducerEpoch, lso: map[string]map[int32]int64{}}
		offs, err := adm.ListCommittedOffsets(ctx, d.Topics.Topics()...)
		if err == nil {
			for topic, ps := range d.Topics {
				z.lso[topic] = map[int32]int64{}
				for p := range ps {
					if o, ok := offs.Lookup(topic, p); ok {
						z.lso[topic][p] = o.Offset
					}
				}
			}
			s.mu.Lock()
			s.mu.zombies = append(s.mu.zombies, z)
			s.mu.Unlock()
		}
	} else if err != nil {
		s.t.Logf("describe the paused replica's transaction: %v", err)
	}
	time.Sleep(time.Until(frozen.Add(pauseFor)))
}

// addPartitions raises every topic of the plan to n partitions, the
// co-partitioned ones first.
func (s *soak) addPartitions(n int32) {
	adm := s.c.admin()
	defer adm.Close()
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	listed, err := adm.ListTopics(ctx)
	if err != nil {
		s.t.Errorf("add partitions: %v", err)
		return
	}
	var topics []string
	for _, name := range listed.Names() {
		if strings.HasPrefix(name, string(s.prefix)) {
			topics = append(topics, name)
		}
	}
	slices.Sort(topics)
	if _, err := adm.UpdatePartitions(ctx, int(n), topics...); err != nil {
		s.t.Errorf("add partitions: %v", err)
	}
}

// completions follows the completions topic read_committed.
type completions struct {
	mu   sync.Mutex
	got  map[string][]completion
	read map[string]bool // partition/offset of every record read
}

type completion struct {
	schemas.Completion
	at        time.Time
	partition int32
}

func watchCompletions(t *testing.T, seeds []string, p topology.Prefix) *completions {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(p.Completions()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.MetadataMaxAge(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	c := &completions{got: map[string][]completion{}, read: map[string]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			now := time.Now()
			fs.EachRecord(func(r *kgo.Record) {
				var m schemas.Completion
				if json.Unmarshal(r.Value, &m) != nil {
					t.Logf("undecodable completion at %s-%d@%d", r.Topic, r.Partition, r.Offset)
					return
				}
				c.mu.Lock()
				// A reader reset by a fetch error reads a record
				// again: that is not a second completion.
				at := fmt.Sprintf("%d/%d", r.Partition, r.Offset)
				if !c.read[at] {
					c.read[at] = true
					c.got[m.Request] = append(c.got[m.Request], completion{m, now, r.Partition})
				}
				c.mu.Unlock()
			})
		}
	}()
	t.Cleanup(func() { cancel(); <-done; cl.Close() })
	return c
}

// waitFor waits until every request has a completion, or timeout.
func (c *completions) waitFor(reqs []started, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		missing := 0
		for _, r := range reqs {
			if len(c.got[r.id]) == 0 {
				missing++
			}
		}
		c.mu.Unlock()
		if missing == 0 {
			time.Sleep(3 * time.Second) // room for a wrong second completion
			return
		}
		time.Sleep(time.Second)
	}
}
