package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/topology"
	"github.com/stepwise-run/stepwise/worker"
)

// devCrashRounds is how many times TestDevSurvivesKill9 kills `stepwise
// dev`. The fast suite runs a few; the figure of record is 20:
//
//	go test ./cmd/stepwise/ -run TestDevSurvivesKill9 -dev-crash-rounds 20 -timeout 30m -v
var devCrashRounds = flag.Int("dev-crash-rounds", 2, "kill -9 rounds of TestDevSurvivesKill9")

// devCrashFlow is the workflow of the crash test: three steps on three
// queues, so each transaction writes state, tasks of another queue and,
// at the end, a completion, on several partitions.
const devCrashFlow = `
workflows:
  - name: crash
    steps:
      - name: a
        queue: crash-a
      - name: b
        queue: crash-b
        depends: [a]
      - name: c
        queue: crash-c
        depends: [b]
`

// devCrashStep is the handler of every step: it returns its input with its
// step's key added, so the output of a request depends on its input only.
func devCrashStep(_ context.Context, t *worker.Task) (json.RawMessage, error) {
	var in map[string]any
	if err := json.Unmarshal(t.Input, &in); err != nil {
		return nil, err
	}
	n, _ := in["n"].(float64)
	in[t.Step] = fmt.Sprintf("%s(%d)", t.Step, int(n))
	return json.Marshal(in)
}

// devCrashWant is the output devCrashStep gives request n.
func devCrashWant(n int) map[string]any {
	return map[string]any{"n": float64(n), "a": fmt.Sprintf("a(%d)", n), "b": fmt.Sprintf("b(%d)", n), "c": fmt.Sprintf("c(%d)", n)}
}

// TestDevSurvivesKill9 kills `stepwise dev` with SIGKILL in the middle of
// a load, again and again, keeping its data directory. After each restart
// it counts torn transactions (records of one transaction visible to
// read_committed readers on some partitions and aborted on others) and
// starts every request of the round again with the same id, as a user
// whose `start` failed would. Every request must then complete exactly
// once with its expected output and show as succeeded in the API; none may
// be lost.
func TestDevSurvivesKill9(t *testing.T) {
	bin := devBinary(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "crash.yaml")
	if err := os.WriteFile(file, []byte(devCrashFlow), 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	addr, httpAddr := devFreeAddr(t), devFreeAddr(t)
	args := []string{"dev", "-f", file, "--data", data, "--kafka-addr", addr, "--http", httpAddr, "--log-level", "warn"}
	spawn := func(round int) *devProc {
		p := devSpawn(t, bin, fmt.Sprintf("stepwise dev (round %d)", round), nil, args...)
		p.waitLine("Press Ctrl-C to stop.", 60*time.Second)
		go func() {
			for range p.lines { // drain
			}
		}()
		return p
	}

	var torn, lost, dup, wrong, shown, requests int
	dev := spawn(0)
	for round := 1; round <= *devCrashRounds; round++ {
		ids := devCrashLoad(t, addr, round, dev)
		requests += len(ids)
		dev = spawn(round)
		// The restarted broker logs each transaction it found
		// unfinished and ended (internal/devbroker/recovery.go).
		repaired := strings.Count(dev.stderr.String(), "transaction left unfinished by a crash")
		// Start every request of the round again: those whose first
		// start was lost with the broker run now, the others must be
		// ignored.
		w := devCrashWorker(t, addr)
		devCrashStart(t, addr, ids)
		r := devCrashCheck(t, addr, httpAddr, ids)
		w.stop()
		tornNow := devTornTxns(t, addr)
		torn = max(torn, tornNow) // the count is over the whole log
		lost += r.lost
		dup += r.dup
		wrong += r.wrong
		shown += r.shown
		t.Logf("round %d: %d requests, markers repaired at restart %d, torn transactions in the log %d, lost %d, completed twice %d, wrong output %d, shown wrongly %d",
			round, len(ids), repaired, tornNow, r.lost, r.dup, r.wrong, r.shown)
	}
	dev.stop()
	t.Logf("%d rounds, %d requests: torn transactions %d, lost %d, completed twice %d, wrong output %d, shown wrongly %d",
		*devCrashRounds, requests, torn, lost, dup, wrong, shown)
	if torn+lost+dup+wrong+shown > 0 {
		t.Errorf("after kill -9: torn transactions %d, lost %d, completed twice %d, wrong output %d, shown wrongly %d; want all 0",
			torn, lost, dup, wrong, shown)
	}
}

// devCrashLoad runs workers and a stream of starts (about 1,000 a second)
// against dev until it kills dev with SIGKILL at a random moment 1-3 s in,
// and returns the ids started (acknowledged or not).
func devCrashLoad(t *testing.T, addr string, round int, dev *devProc) []int {
	t.Helper()
	w := devCrashWorker(t, addr)
	defer w.stop()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ProducerLinger(0), kgo.RecordDeliveryTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var ids []int
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ctx.Err() == nil; i++ {
			n := round*100_000 + i
			ids = append(ids, n)
			cl.Produce(ctx, devCrashRecord(n), nil)
			if i%10 == 9 {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}()
	time.Sleep(time.Second + rand.N(2*time.Second))
	if err := dev.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-dev.done
	cancel()
	<-done
	return ids
}

// devCrashRecord is the start of request n.
func devCrashRecord(n int) *kgo.Record {
	id := devCrashID(n)
	v := fmt.Sprintf(`{"type":"start","workflow":"crash","id":%q,"input":{"n":%d}}`, id, n)
	return &kgo.Record{Topic: topology.DefaultPrefix.Requests(), Key: []byte(id), Value: []byte(v)}
}

type devCrashWorkers struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (w *devCrashWorkers) stop() {
	w.cancel()
	<-w.done
}

// devCrashWorker runs the three steps' handlers in this process.
func devCrashWorker(t *testing.T, addr string) *devCrashWorkers {
	t.Helper()
	wk, err := worker.New(worker.WithBrokers(addr), worker.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		worker.WithKafkaOpts(kgo.SessionTimeout(6*time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"crash-a", "crash-b", "crash-c"} {
		wk.Handle(q, devCrashStep)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &devCrashWorkers{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		_ = wk.Run(ctx)
	}()
	return w
}

// devCrashStart produces a start for each of ids and waits for the
// broker's acknowledgements.
func devCrashStart(t *testing.T, addr string, ids []int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	recs := make([]*kgo.Record, len(ids))
	for i, n := range ids {
		recs[i] = devCrashRecord(n)
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("starting again: %v", err)
	}
}

func devCrashID(n int) string { return "crash-" + strconv.Itoa(n) }

type devCrashResult struct{ lost, dup, wrong, shown int }

// devCrashCheck waits for a completion of each of ids (at most 90 s in
// all), then reads the whole completions topic and asks the API for each
// request's status.
func devCrashCheck(t *testing.T, addr, httpAddr string, ids []int) devCrashResult {
	t.Helper()
	want := map[string]int{}
	for _, n := range ids {
		want[devCrashID(n)] = n
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr),
		kgo.ConsumeTopics(topology.DefaultPrefix.Completions()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// By record: a reader that goes back (a fetch error resets it) reads
	// the same completion again, which is not a second completion.
	seen := map[string]map[int64]schemas.Completion{}
	done := 0
	deadline := time.Now().Add(90 * time.Second)
	quietSince := time.Time{}
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			var c schemas.Completion
			if json.Unmarshal(r.Value, &c) != nil {
				return
			}
			if _, ok := want[c.Request]; ok {
				if seen[c.Request] == nil {
					done++
					seen[c.Request] = map[int64]schemas.Completion{}
				}
				seen[c.Request][int64(r.Partition)<<40|r.Offset] = c
			}
		})
		// All done: keep reading for 2 s more, so that a second
		// completion written late is counted.
		if done < len(want) {
			continue
		}
		if fs.NumRecords() > 0 || quietSince.IsZero() {
			quietSince = time.Now()
		}
		if time.Since(quietSince) > 2*time.Second {
			break
		}
	}
	var r devCrashResult
	for id, n := range want {
		var cs []schemas.Completion
		for _, at := range slices.Sorted(maps.Keys(seen[id])) {
			cs = append(cs, seen[id][at])
		}
		switch {
		case len(cs) == 0:
			r.lost++
			t.Logf("%s: no completion; the API shows %q", id, devCrashStatus(t, httpAddr, id))
			continue
		case len(cs) > 1:
			r.dup++
			t.Logf("%s: %d completions", id, len(cs))
		}
		var out map[string]any
		if cs[0].Status != schemas.Succeeded || json.Unmarshal(cs[0].Output, &out) != nil || !equalJSON(out, devCrashWant(n)) {
			r.wrong++
			t.Logf("%s: %s %s, want %v", id, cs[0].Status, cs[0].Output, devCrashWant(n))
		}
		if st := devCrashStatus(t, httpAddr, id); st != string(schemas.Succeeded) {
			r.shown++
			t.Logf("%s: the API shows %q", id, st)
		}
	}
	return r
}

func equalJSON(a, b map[string]any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// devCrashStatus returns the status the API shows for id ("" when it
// does not know it).
func devCrashStatus(t *testing.T, httpAddr, id string) string {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/api/v1/requests/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Status string `json:"status"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&st) != nil {
		return ""
	}
	return st.Status
}

// devTornTxns counts the transactions of the processor that are torn: some
// of their records (state, tasks, completions) visible to read_committed
// readers and others aborted. Each transaction has its own producer epoch
// (transactions of Kafka 4, KIP-890, which the embedded broker speaks), so
// (producer id, epoch) names one. Only records below each partition's last
// stable offset count: later ones may belong to transactions still open.
func devTornTxns(t *testing.T, addr string) int {
	t.Helper()
	p := topology.DefaultPrefix
	topics := []string{p.State(), p.Completions(), p.Tasks("crash-a"), p.Tasks("crash-b"), p.Tasks("crash-c")}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	lso, err := kadm.NewClient(cl).ListCommittedOffsets(ctx, topics...)
	if err != nil {
		t.Fatal(err)
	}
	type txn struct {
		pid   int64
		epoch int16
	}
	read := func(level kgo.IsolationLevel) map[txn]int {
		out := map[txn]int{}
		parts := map[string]map[int32]kgo.Offset{}
		left := map[string]map[int32]int64{} // partitions not read to their LSO yet
		lso.Each(func(o kadm.ListedOffset) {
			if o.Offset <= 0 {
				return
			}
			if parts[o.Topic] == nil {
				parts[o.Topic], left[o.Topic] = map[int32]kgo.Offset{}, map[int32]int64{}
			}
			parts[o.Topic][o.Partition] = kgo.NewOffset().AtStart()
			left[o.Topic][o.Partition] = o.Offset
		})
		c, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumePartitions(parts), kgo.FetchIsolationLevel(level))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		empty := 0
		for len(left) > 0 && empty < 3 && ctx.Err() == nil {
			pctx, pcancel := context.WithTimeout(ctx, time.Second)
			fs := c.PollFetches(pctx)
			pcancel()
			if fs.NumRecords() == 0 {
				empty++
				continue
			}
			empty = 0
			fs.EachRecord(func(r *kgo.Record) {
				end, ok := left[r.Topic][r.Partition]
				if !ok || r.Offset >= end {
					return
				}
				out[txn{r.ProducerID, r.ProducerEpoch}]++
				if r.Offset == end-1 {
					delete(left[r.Topic], r.Partition)
					if len(left[r.Topic]) == 0 {
						delete(left, r.Topic)
					}
				}
			})
		}
		return out
	}
	all := read(kgo.ReadUncommitted())
	visible := read(kgo.ReadCommitted())
	torn, aborted := 0, 0
	defer func() { t.Logf("%d transactions in the log, %d aborted, %d torn", len(all), aborted, torn) }()
	for id, n := range all {
		if visible[id] == 0 {
			aborted++
		}
		if v := visible[id]; v > 0 && v < n {
			torn++
			t.Logf("torn transaction: producer %d epoch %d: %d of its %d records visible", id.pid, id.epoch, v, n)
		}
	}
	return torn
}
