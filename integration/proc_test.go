//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/processors"
	"github.com/stepwise-run/stepwise/topology"
)

// The binaries the process tests run, built once per `go test` run into a
// temporary directory that TestMain removes.
var bins struct {
	once     sync.Once
	dir      string
	stepwise string // cmd/stepwise
	echo     string // integration/cmd/echoworker
	err      error
}

// binaries builds stepwise and echoworker on first use and returns their
// paths.
func binaries(t *testing.T) (stepwise, echo string) {
	t.Helper()
	bins.once.Do(func() {
		bins.dir, bins.err = os.MkdirTemp("", "stepwise-it-bin-")
		if bins.err != nil {
			return
		}
		bins.stepwise = filepath.Join(bins.dir, "stepwise")
		bins.echo = filepath.Join(bins.dir, "echoworker")
		start := time.Now()
		for out, pkg := range map[string]string{bins.stepwise: "./cmd/stepwise", bins.echo: "./integration/cmd/echoworker"} {
			cmd := exec.Command("go", "build", "-o", out, pkg)
			cmd.Dir = ".." // the module root: tests run in integration/
			if b, err := cmd.CombinedOutput(); err != nil {
				bins.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
				return
			}
		}
		fmt.Printf("built stepwise and echoworker in %s\n", time.Since(start).Round(time.Millisecond))
	})
	if bins.err != nil {
		t.Fatal(bins.err)
	}
	return bins.stepwise, bins.echo
}

// removeBinaries deletes what binaries built; TestMain calls it.
func removeBinaries() {
	if bins.dir != "" {
		os.RemoveAll(bins.dir)
	}
}

// proc is one child process of a test: a processor (`stepwise run`) or a
// worker. Its output goes to a file whose tail is printed when the test
// fails.
type proc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed when the process has exited
	err  error         // its exit status, once done is closed
}

// spawn starts bin with args and the extra environment variables env
// ("K=V"). The process is stopped (TERM, then KILL) when the test ends.
func (e *env) spawn(name, bin string, env []string, args ...string) *proc {
	e.t.Helper()
	logPath := filepath.Join(e.t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		e.t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		f.Close()
		e.t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{t: e.t, name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	e.t.Cleanup(func() {
		p.stop()
		if e.t.Failed() {
			p.dumpLog(40)
		}
	})
	return p
}

// kill sends SIGKILL, as a crash or an OOM kill would: no commit, no abort,
// no leaving the group. It returns when the process is gone.
func (p *proc) kill() time.Time {
	p.t.Helper()
	at := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.t.Fatalf("kill %s: %v", p.name, err)
	}
	<-p.done
	return at
}

// stop sends SIGTERM and waits up to 30 s for a clean exit, then kills.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.t.Errorf("%s did not stop within 30s of SIGTERM; killing it", p.name)
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	}
}

// running reports whether the process has not exited.
func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) dumpLog(lines int) {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	all = all[max(0, len(all)-lines):]
	p.t.Logf("---- last lines of %s (exit: %v)\n%s", p.name, p.err, strings.Join(all, "\n"))
}

// logContains reports whether the process's output so far has a line
// containing s.
func (p *proc) logContains(s string) bool {
	f, err := os.Open(p.log)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if bytes.Contains(sc.Bytes(), []byte(s)) {
			return true
		}
	}
	return false
}

// chainYAML is the workflow of the process tests: three steps on three
// queues, so each request makes three task/result round trips.
const chainYAML = `
workflows:
  - name: chain
    steps:
      - name: a
      - name: b
        depends: [a]
      - name: c
        depends: [b]
`

// stack is a Stepwise installation made of OS processes on the test's
// cluster: topics created by `stepwise topics create`, processors run by
// `stepwise run`, workers by echoworker or `stepwise workers`.
type stack struct {
	e        *env
	stepwise string
	echo     string
	files    []string // workflow definition files
	set      *topology.Set
	conn     []string // connection flags: --brokers, --prefix, SASL...
	procEnv  []string
}

// newStack writes yaml to a file and creates its topic plan with
// partitions partitions through `stepwise topics create`. connFlags
// replace the default plaintext --brokers flag when given.
func (e *env) newStack(yaml string, partitions int, connFlags ...string) *stack {
	e.t.Helper()
	return e.newStackOf([][]byte{[]byte(yaml)}, partitions, connFlags...)
}

// newStackOf is newStack with several definition files.
func (e *env) newStackOf(yamls [][]byte, partitions int, connFlags ...string) *stack {
	e.t.Helper()
	sw, echo := binaries(e.t)
	dir := e.t.TempDir()
	var files []string
	for i, y := range yamls {
		file := filepath.Join(dir, fmt.Sprintf("workflows-%d.yaml", i))
		if err := os.WriteFile(file, y, 0o644); err != nil {
			e.t.Fatal(err)
		}
		files = append(files, file)
	}
	set, err := topology.Load(files...)
	if err != nil {
		e.t.Fatal(err)
	}
	if len(connFlags) == 0 {
		connFlags = []string{"--brokers", strings.Join(e.Seeds, ",")}
	}
	s := &stack{e: e, stepwise: sw, echo: echo, files: files, set: set,
		conn: append(connFlags, "--prefix", string(e.Prefix))}
	for _, spec := range set.Topics(e.Prefix) {
		e.topics = append(e.topics, spec.Name) // deleted when the test ends
	}
	args := append(append([]string{"topics", "create", "--partitions", fmt.Sprint(partitions)}, s.fileFlags()...), s.conn...)
	// `topics create` describes the topics right after creating them; on a
	// broker that has just started, the new topics can be missing from
	// that description for a moment and the command exits 1. Running it
	// again is safe (it creates only what is missing).
	for attempt := 1; ; attempt++ {
		out, err := exec.CommandContext(e.ctx, sw, args...).CombinedOutput()
		if err == nil {
			break
		}
		if attempt == 5 {
			e.t.Fatalf("stepwise %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		time.Sleep(time.Second)
	}
	return s
}

// processor starts `stepwise run` as replica id, with the default session
// and transaction timeouts (the ones the deployment files use).
func (s *stack) processor(id string, extra ...string) *proc {
	s.e.t.Helper()
	args := append(append([]string{"run", "--replica-id", id, "--client-id", clientID(id)}, s.fileFlags()...), s.conn...)
	return s.e.spawn("processor-"+id, s.stepwise, s.procEnv, append(args, extra...)...)
}

// fileFlags returns -f FILE for each definition file.
func (s *stack) fileFlags() []string {
	var out []string
	for _, f := range s.files {
		out = append(out, "-f", f)
	}
	return out
}

// exampleWorkers starts `stepwise workers --example all`: the Go workers of
// both examples in one process.
func (s *stack) exampleWorkers(name string, extra ...string) *proc {
	s.e.t.Helper()
	args := append([]string{"workers", "--example", "all"}, s.conn...)
	return s.e.spawn("workers-"+name, s.stepwise, s.procEnv, append(args, extra...)...)
}

// clientID is the client id a replica reports, so group descriptions can
// say which process owns which partitions.
func clientID(replica string) string { return "processor-" + replica }

// echoWorker starts an echo worker process for every queue of the stack.
func (s *stack) echoWorker(name string, delay time.Duration, extra ...string) *proc {
	s.e.t.Helper()
	args := append([]string{"--queues", strings.Join(s.set.Queues(), ","), "--delay", delay.String()}, s.conn...)
	return s.e.spawn("worker-"+name, s.echo, s.procEnv, append(args, extra...)...)
}

// owned returns the partitions of the requests topic each processor owns,
// by replica id, from the group's description.
func (s *stack) owned() (map[string][]int32, error) {
	group := processors.GroupID(s.e.Prefix)
	ctx, cancel := context.WithTimeout(s.e.ctx, 10*time.Second)
	defer cancel()
	described, err := s.e.Admin.DescribeGroups(ctx, group)
	if err != nil {
		return nil, err
	}
	g, ok := described[group]
	if !ok || g.Err != nil {
		return nil, fmt.Errorf("describe group %s: %v", group, g.Err)
	}
	out := map[string][]int32{}
	for _, m := range g.Members {
		c, ok := m.Assigned.AsConsumer()
		if !ok {
			continue
		}
		replica := strings.TrimPrefix(m.ClientID, "processor-")
		for _, tp := range c.Topics {
			if tp.Topic == s.e.Prefix.Requests() {
				out[replica] = append(out[replica], tp.Partitions...)
			}
		}
	}
	return out, nil
}

// waitOwned waits until the given replicas, and only they, own all n
// partitions of the requests topic between them, each at least one, and
// returns the assignment.
func (s *stack) waitOwned(n int, replicas ...string) map[string][]int32 {
	s.e.t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	var last map[string][]int32
	var lastErr error
	for time.Now().Before(deadline) {
		last, lastErr = s.owned()
		if lastErr == nil && len(last) == len(replicas) {
			total := 0
			ok := true
			for _, r := range replicas {
				total += len(last[r])
				ok = ok && len(last[r]) > 0
			}
			if ok && total == n {
				return last
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.e.t.Fatalf("replicas %v never owned the %d partitions: last assignment %v (err %v)", replicas, n, last, lastErr)
	return nil
}

// addPartitions raises the partition count of the four co-partitioned
// topics to n together, as docs/operations.md says to.
func (s *stack) addPartitions(n int) {
	s.e.t.Helper()
	p := s.e.Prefix
	resps, err := s.e.Admin.UpdatePartitions(s.e.ctx, n, p.Requests(), p.Results(), p.State(), p.Completions())
	if err == nil {
		err = resps.Error()
	}
	if err != nil {
		s.e.t.Fatalf("add partitions: %v", err)
	}
}

// metadataOpts are for the test's own producers and readers: it notices
// added partitions within seconds (franz-go's default is 5 minutes).
func metadataOpts() []kgo.Opt {
	return []kgo.Opt{kgo.MetadataMinAge(500 * time.Millisecond), kgo.MetadataMaxAge(2 * time.Second)}
}
