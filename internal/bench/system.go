package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// system is one running processor replica or relay: a child process, or
// goroutines of this process.
type system interface {
	// usage returns the CPU time used so far and the memory figures.
	usage() usage
	// restored returns what the replica's restores read and how long they
	// took, summed over its assignments.
	restored() restoreFigures
	// stop ends it and waits.
	stop() error
	// exited returns a non-nil error once it has ended by itself (a
	// processor that failed at start), naming why.
	exited() error
	// resetPeak starts the peak resident figure afresh (after the
	// warm-up); a no-op where the figures are the whole bench process's.
	resetPeak() error
}

type usage struct {
	cpu     time.Duration
	rss     int64 // resident now, bytes
	peakRSS int64 // highest resident, bytes
	// shared is true when the figures are those of this whole process
	// (broker, workers and driver included), not of the system alone.
	shared bool
}

type restoreFigures struct {
	restores int
	records  uint64
	duration time.Duration
	// at is when the latest restore was reported.
	at time.Time
}

// clockTick is the unit of the CPU times in /proc/<pid>/stat: USER_HZ,
// which Linux fixes at 100 for user space.
const clockTick = 10 * time.Millisecond

// procUsage reads the CPU and memory figures of process pid from /proc.
func procUsage(pid int) (usage, error) {
	var u usage
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, err
	}
	// The command name (field 2) may hold spaces; the fields after its
	// closing parenthesis are fixed. utime and stime are fields 14 and 15.
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return u, fmt.Errorf("stepwise: /proc/%d/stat: %d fields after the name", pid, len(fields))
	}
	ut, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	u.cpu = time.Duration(ut+st) * clockTick
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	u.rss, u.peakRSS = parseStatusKB(string(status), "VmRSS:"), parseStatusKB(string(status), "VmHWM:")
	return u, nil
}

// parseStatusKB returns the value of a "Key:   123 kB" line of
// /proc/<pid>/status in bytes, 0 when absent.
func parseStatusKB(status, key string) int64 {
	for line := range strings.Lines(status) {
		if rest, ok := strings.CutPrefix(line, key); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n * 1024
			}
		}
	}
	return 0
}

// inProcess is a system running as goroutines of this process.
type inProcess struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when run has returned err
	err    error
	stats  func() restoreFigures // nil for the relay
}

func startInProcess(ctx context.Context, run func(context.Context) error, stats func() restoreFigures) *inProcess {
	ctx, cancel := context.WithCancel(ctx)
	s := &inProcess{cancel: cancel, done: make(chan struct{}), stats: stats}
	go func() {
		s.err = run(ctx)
		close(s.done)
	}()
	return s
}

func (s *inProcess) exited() error {
	select {
	case <-s.done:
		return fmt.Errorf("stepwise: in-process system ended: %v", s.err)
	default:
		return nil
	}
}

func (s *inProcess) usage() usage {
	u, _ := procUsage(os.Getpid())
	u.shared = true
	return u
}

func (s *inProcess) resetPeak() error { return nil }

func (s *inProcess) restored() restoreFigures {
	if s.stats == nil {
		return restoreFigures{}
	}
	return s.stats()
}

func (s *inProcess) stop() error {
	s.cancel()
	select {
	case <-s.done:
		return s.err
	case <-time.After(30 * time.Second):
		return errors.New("stepwise: in-process system did not stop within 30s")
	}
}

// child is a system running as a child process (`stepwise run`, or the
// relay mode of `stepwise bench`). Its stderr is read for the restore
// lines of the processor's log; warnings and errors are passed on, and the
// last lines are kept to say why it exited if it does.
type child struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited with err
	err  error
	mu   struct {
		sync.Mutex
		rest restoreFigures
		last usage    // the latest figures read while it ran
		tail []string // the last tailLines lines of stderr
	}
}

// tailLines is how many of a child's last stderr lines its exit reports.
const tailLines = 5

// The processor's log line after a restore, as slog's text handler writes
// it (see processors.Processor.assigned).
var (
	restoredLine    = regexp.MustCompile(`msg="partitions restored".* records=(\d+) duration=(\S+)`)
	warnOrErrorLine = regexp.MustCompile(`level=(WARN|ERROR)`)
)

func startChild(argv []string, env []string, logTo io.Writer) (*child, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = logTo
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("stepwise: start %s: %w", strings.Join(argv, " "), err)
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			line := sc.Text()
			c.mu.Lock()
			c.mu.tail = append(c.mu.tail, line)
			if len(c.mu.tail) > tailLines {
				c.mu.tail = c.mu.tail[1:]
			}
			c.mu.Unlock()
			if m := restoredLine.FindStringSubmatch(line); m != nil {
				n, _ := strconv.ParseUint(m[1], 10, 64)
				d, _ := time.ParseDuration(m[2])
				c.mu.Lock()
				c.mu.rest.restores++
				c.mu.rest.records += n
				c.mu.rest.duration += d
				c.mu.rest.at = time.Now()
				c.mu.Unlock()
			} else if warnOrErrorLine.MatchString(line) && logTo != nil {
				fmt.Fprintf(logTo, "[pid %d] %s\n", cmd.Process.Pid, line)
			}
		}
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// exited reports the child's exit status and its last stderr lines (where
// `stepwise run` prints a fatal error) once it has exited.
func (c *child) exited() error {
	select {
	case <-c.done:
	default:
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Errorf("stepwise: %s (pid %d) exited: %v; its last output:\n  %s",
		strings.Join(c.cmd.Args, " "), c.cmd.Process.Pid, c.err, strings.Join(c.mu.tail, "\n  "))
}

func (c *child) usage() usage {
	u, err := procUsage(c.cmd.Process.Pid)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil { // exited: the last figures read stand
		return c.mu.last
	}
	c.mu.last = u
	return u
}

// resetPeak sets VmHWM back to the resident size now ("5" in
// /proc/<pid>/clear_refs, Linux 4.0 and later).
func (c *child) resetPeak() error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", c.cmd.Process.Pid), []byte("5"), 0)
}

func (c *child) restored() restoreFigures {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.rest
}

// stop asks the child to finish (SIGTERM: the processor ends its
// transaction and leaves the group) and kills it after 20 s.
func (c *child) stop() error {
	c.usage() // keep the last figures
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		return c.err
	case <-time.After(20 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
		return fmt.Errorf("stepwise: pid %d did not stop within 20s of SIGTERM; killed", c.cmd.Process.Pid)
	}
}
