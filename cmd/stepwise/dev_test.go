package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/examples/idp"
	wordcounts "github.com/stepwise-run/stepwise/examples/word-counts"
	"github.com/stepwise-run/stepwise/internal/catchup"
	"github.com/stepwise-run/stepwise/internal/devbroker"
	"github.com/stepwise-run/stepwise/processors"
	"github.com/stepwise-run/stepwise/schemas"
	"github.com/stepwise-run/stepwise/topology"
)

// These tests run the real binary: `stepwise dev` in one process, clients
// and `stepwise workers` in others, as a user would from several shells.

// devBinary builds cmd/stepwise into a test directory (the build cache
// makes every build after the first a link).
func devBinary(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "stepwise")
	if out, err := exec.Command("go", "build", "-o", path, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return path
}

func devFreeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// proc is a running stepwise process.
type devProc struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	stderr *devSyncBuffer
	lines  chan string // stdout
	done   chan error
}

type devSyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *devSyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *devSyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func devSpawn(t *testing.T, bin, name string, env []string, args ...string) *devProc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	p := &devProc{t: t, name: name, cmd: cmd, stderr: &devSyncBuffer{}, lines: make(chan string, 100), done: make(chan error, 1)}
	cmd.Stderr = p.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("%s stderr:\n%s", name, p.stderr.String())
		}
	})
	return p
}

// waitLine reads stdout until a line containing s, and returns it.
func (p *devProc) waitLine(s string, timeout time.Duration) string {
	p.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				p.t.Fatalf("%s exited before printing %q; stderr:\n%s", p.name, s, p.stderr.String())
			}
			if strings.Contains(line, s) {
				return line
			}
		case <-deadline:
			p.t.Fatalf("%s printed no %q within %v; stderr:\n%s", p.name, s, timeout, p.stderr.String())
		}
	}
}

// stop interrupts the process as Ctrl-C does and checks it exits cleanly.
func (p *devProc) stop() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		p.t.Fatal(err)
	}
	go func() {
		for range p.lines { // drain
		}
	}()
	select {
	case err := <-p.done:
		if err != nil {
			p.t.Fatalf("%s exited with %v after SIGINT; stderr:\n%s", p.name, err, p.stderr.String())
		}
	case <-time.After(40 * time.Second):
		p.t.Fatalf("%s did not stop within 40s of SIGINT", p.name)
	}
}

// startDev runs `stepwise dev` and returns it once it is ready, with the
// broker address it printed.
func devStart(t *testing.T, bin string, args ...string) (*devProc, string) {
	t.Helper()
	addr := devFreeAddr(t)
	// The HTTP API gets a free port too: 8080 may be taken on a shared
	// machine.
	p := devSpawn(t, bin, "stepwise dev", []string{idp.LatencyEnv + "=1ms"},
		append([]string{"dev", "--kafka-addr", addr, "--http", devFreeAddr(t), "--log-level", "warn"}, args...)...)
	line := p.waitLine("Kafka broker:", 60*time.Second)
	if !strings.Contains(line, addr) {
		t.Fatalf("banner says %q, want the broker on %s", line, addr)
	}
	p.waitLine("Press Ctrl-C to stop.", 10*time.Second)
	return p, addr
}

// request starts a workflow with a plain Kafka client, as any client
// would, and returns its completion.
func devRequest(t *testing.T, addr, id, workflow, input string) schemas.Completion {
	t.Helper()
	prefix := topology.DefaultPrefix
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr),
		kgo.ConsumeTopics(prefix.Completions()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	v, err := json.Marshal(schemas.NewStart(workflow, 0, id, json.RawMessage(input)))
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: prefix.Requests(), Key: []byte(id), Value: []byte(v)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("no completion of %s: %v", id, ctx.Err())
		}
		var found *schemas.Completion
		fs.EachRecord(func(r *kgo.Record) {
			var c schemas.Completion
			if json.Unmarshal(r.Value, &c) == nil && c.Request == id {
				found = &c
			}
		})
		if found != nil {
			return *found
		}
	}
}

func devSucceeded[T any](t *testing.T, c schemas.Completion) T {
	t.Helper()
	if c.Status != schemas.Succeeded {
		t.Fatalf("%s: %s %+v, want succeeded", c.Request, c.Status, c.Error)
	}
	var v T
	if err := json.Unmarshal(c.Output, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// checkBook checks a book-word-counts output of the bundled book against
// the test's own count: words by strings.FieldsFunc over the chapters.
func devCheckBook(t *testing.T, out wordcounts.Summary, title string) {
	t.Helper()
	body := wordcounts.Book[strings.Index(wordcounts.Book, "\nCHAPTER I.\n"):]
	chapters, total := 0, 0
	for line := range strings.Lines(body) {
		if strings.HasPrefix(line, "CHAPTER ") {
			chapters++
			continue
		}
		// The generated book has no apostrophes other than inside words
		// and no digits, so splitting at anything but letters and
		// apostrophes counts the same words.
		total += len(strings.FieldsFunc(line, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '\'')
		}))
	}
	if out.TotalWords != total || out.Chapters != chapters || len(out.TopWords) != wordcounts.TopWords {
		t.Errorf("%d words in %d chapters, %d top words; test counts %d in %d", out.TotalWords, out.Chapters, len(out.TopWords), total, chapters)
	}
	if title != "The Keeper of Harrow Light" {
		t.Errorf("title %q", title)
	}
}

type devBookOutput struct {
	wordcounts.Summary
	Title string `json:"title"`
}

// devStartCommand runs `stepwise start WORKFLOW --input INPUT --wait`
// and returns its completion and exit code.
func devStartCommand(t *testing.T, bin, addr, workflow, input string) (schemas.Completion, int) {
	t.Helper()
	cmd := exec.Command(bin, "start", workflow, "--input", input, "--wait", "--timeout", "60s", "--brokers", addr)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var c schemas.Completion
	if err := json.Unmarshal(out, &c); err != nil {
		t.Fatalf("stepwise start %s printed %q (exit %d, stderr %q): not a completion event: %v", workflow, out, code, stderr.String(), err)
	}
	return c, code
}

// TestDevExamplesThroughTheBinary is the newcomer's path: `stepwise dev
// --examples` in one shell, `stepwise start ... --wait` in another.
func TestDevExamplesThroughTheBinary(t *testing.T) {
	bin := devBinary(t)
	dev, addr := devStart(t, bin, "--examples", "--in-memory")

	c, code := devStartCommand(t, bin, addr, "idp", "{}")
	a := devSucceeded[idp.Assembled](t, c)
	if code != 0 || a.Summary.Documents != 3 || a.Summary.Pages != 7 || len(a.Documents) != 3 {
		t.Errorf("idp: exit %d, %+v", code, a.Summary)
	}
	for i, d := range a.Documents {
		if want := idp.DefaultBundle().Documents[i]; d.Name != want.Name || d.Pages != len(want.Pages) || len(d.Fields) == 0 {
			t.Errorf("idp document %d: %+v", i, d)
		}
	}
	c, code = devStartCommand(t, bin, addr, "book-word-counts", "{}")
	book := devSucceeded[devBookOutput](t, c)
	if code != 0 {
		t.Errorf("book-word-counts: exit %d", code)
	}
	devCheckBook(t, book.Summary, book.Title)

	c, code = devStartCommand(t, bin, addr, "no-such-workflow", "{}")
	if code != 1 || c.Status != schemas.Failed || c.Error == nil || !strings.Contains(c.Error.Message, `unknown workflow "no-such-workflow"`) {
		t.Errorf("unknown workflow: exit %d, %+v %+v", code, c, c.Error)
	}
	// A raw client (any language's Kafka client) works the same.
	if c := devRequest(t, addr, "raw-1", "idp", `{"bundle": {"documents": [{"name": "x", "pages": ["Dear Al,"]}]}}`); c.Status != schemas.Succeeded {
		t.Errorf("raw client: %+v", c)
	}
	dev.stop()
}

func TestWorkersAsTheirOwnProcess(t *testing.T) {
	bin := devBinary(t)
	// dev without --examples: a broker and a processor, no workers.
	dev, addr := devStart(t, bin, "-f", "../../examples/idp/workflows.yaml", "-f", "../../examples/word-counts/workflows.yaml", "--in-memory")
	workers := devSpawn(t, bin, "stepwise workers", []string{idp.LatencyEnv + "=0"}, "workers", "--example", "idp,word-counts", "--brokers", addr, "--concurrency", "2")

	a := devSucceeded[idp.Assembled](t, devRequest(t, addr, "idp-w", "idp", `{"bundle": {"documents": [{"name": "one", "pages": ["Dear Ann,\n\nSincerely,\nBo"]}]}}`))
	if len(a.Documents) != 1 || a.Documents[0].Class != "letter" || a.Documents[0].Fields["recipient"] != "Ann" {
		t.Errorf("idp: %+v", a)
	}
	book := devSucceeded[devBookOutput](t, devRequest(t, addr, "book-w", "book-word-counts", `{}`))
	devCheckBook(t, book.Summary, book.Title)
	workers.stop()
	dev.stop()
}

func TestDevKeepsDataAcrossRestarts(t *testing.T) {
	bin := devBinary(t)
	data := t.TempDir()
	dev, addr := devStart(t, bin, "--examples", "--data", data)
	first := devRequest(t, addr, "before", "idp", `{}`)
	if first.Status != schemas.Succeeded {
		t.Fatalf("before restart: %+v", first)
	}
	dev.stop()

	dev, addr = devStart(t, bin, "--examples", "--data", data)
	// The completion written before the restart is still there; the
	// restarted processor knows the request (a second start of its id is
	// ignored) and runs new ones.
	if again := devRequest(t, addr, "before", "idp", `{}`); again.Finished != first.Finished {
		t.Errorf("completion after restart %+v, want the one of before", again)
	}
	if after := devRequest(t, addr, "after", "book-word-counts", `{}`); after.Status != schemas.Succeeded {
		t.Errorf("after restart: %+v", after)
	}
	devProcessed(t, addr) // the repeated start is handled: a wrong second completion would be written
	if n := len(devAllCompletions(t, addr, "before")); n != 1 {
		t.Errorf("%d completions of the request started before the restart, want 1", n)
	}
	dev.stop()
}

// devAllCompletions reads the completions topic to its end and returns
// those of id.
func devAllCompletions(t *testing.T, addr, id string) []schemas.Completion {
	t.Helper()
	var out []schemas.Completion
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := catchup.Read(ctx, []kgo.Opt{kgo.SeedBrokers(addr)}, topology.DefaultPrefix.Completions(), nil, func(r *kgo.Record) {
		var c schemas.Completion
		if json.Unmarshal(r.Value, &c) == nil && c.Request == id {
			out = append(out, c)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// devProcessed waits until the processors have committed every record of
// the requests topic written so far: what they write for them is then
// committed too.
func devProcessed(t *testing.T, addr string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topic := topology.DefaultPrefix.Requests()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	for {
		committed, err := adm.FetchOffsets(ctx, processors.GroupID(topology.DefaultPrefix))
		behind := 0
		ends.Each(func(o kadm.ListedOffset) {
			if c, ok := committed.Lookup(topic, o.Partition); o.Offset > 0 && (!ok || c.At < o.Offset) {
				behind++
			}
		})
		if err == nil && behind == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("processors did not commit the requests topic to its end: %d partitions behind (%v): ends %v committed %v", behind, err, ends, committed)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func TestDevFlags(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--examples", "--data", "x", "--in-memory"},
		{"--examples", "--partitions", "0"},
		{"--examples", "stray"},
	} {
		o, err := devParse(args, &bytes.Buffer{})
		ee, ok := err.(*exitError)
		if o != nil || !ok || ee.code != 2 {
			t.Errorf("dev %v: %v, %v; want a usage error", args, o, err)
		}
	}
	o, err := devParse([]string{"--examples"}, &bytes.Buffer{})
	if err != nil || o.data != devDefaultData {
		t.Errorf("default data dir: %+v %v", o, err)
	}
	o, err = devParse([]string{"--examples", "--in-memory"}, &bytes.Buffer{})
	if err != nil || o.data != "" {
		t.Errorf("--in-memory: %+v %v", o, err)
	}
}

// The banner suggests the examples' workers only for an example's own
// workflow loaded with -f: a file of one's own needs workers of its own,
// and with --examples they run in the process already.
func TestDevBannerSuggestsExampleWorkersOnlyForExamples(t *testing.T) {
	b, err := devbroker.Start(devbroker.WithAddr("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	own, err := topology.Parse("mine.yaml", []byte("workflows:\n  - name: mine\n    steps:\n      - name: only\n"))
	if err != nil {
		t.Fatal(err)
	}
	idpSet, err := idp.Definitions()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		set      *topology.Set
		examples bool
		want     string // "" : no suggestion of example workers
	}{
		{"own file", own, false, ""},
		{"idp's file", idpSet, false, "stepwise workers --example idp"},
		{"--examples", idpSet, true, ""},
	} {
		var out bytes.Buffer
		devBanner(&out, b, tc.set, &devOptions{examples: tc.examples, prefix: string(topology.DefaultPrefix)})
		got := out.String()
		if tc.want == "" && strings.Contains(got, "--example") {
			t.Errorf("%s: the banner suggests example workers:\n%s", tc.name, got)
		}
		if tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("%s: the banner lacks %q:\n%s", tc.name, tc.want, got)
		}
		if !strings.Contains(got, "SDKs for Go, Python and") {
			t.Errorf("%s: the banner does not point to the SDKs:\n%s", tc.name, got)
		}
	}
}
