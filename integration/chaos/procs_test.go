//go:build integration

package chaos

import (
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
)

// proc is one supervised child process: a processor replica or a worker.
// Its output is appended to one log file across restarts, so the workers'
// execution lines of every incarnation stay there for the checker. The
// supervisor starts it again whenever it is down while it should be up.
type proc struct {
	t    *testing.T
	name string
	kind string // "processor" or "worker"
	argv []string
	env  []string
	log  string

	mu struct {
		sync.Mutex
		cmd    *exec.Cmd
		done   chan struct{} // closed when cmd has exited
		wantUp bool
		exits  int // exits the test did not cause
	}
}

func newProc(t *testing.T, dir, name, kind string, env []string, argv ...string) *proc {
	p := &proc{t: t, name: name, kind: kind, argv: argv, env: env, log: filepath.Join(dir, name+".log")}
	p.mu.wantUp = true
	p.start()
	return p
}

// start starts the process unless it runs.
func (p *proc) start() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mu.wantUp = true
	if p.mu.cmd != nil && !closed(p.mu.done) {
		return
	}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		p.t.Errorf("%s: %v", p.name, err)
		return
	}
	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), p.env...)
	if err := cmd.Start(); err != nil {
		f.Close()
		p.t.Errorf("start %s: %v", p.name, err)
		return
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		f.Close()
		close(done)
	}()
	p.mu.cmd, p.mu.done = cmd, done
}

func closed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// signal sends sig; SIGKILL and SIGTERM keep the process down (until
// start) and wait for its exit.
func (p *proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	cmd, done := p.mu.cmd, p.mu.done
	if sig == syscall.SIGKILL || sig == syscall.SIGTERM {
		p.mu.wantUp = false
	}
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.t.Errorf("%s: %v: %v", p.name, sig, err)
	}
	if sig == syscall.SIGKILL || sig == syscall.SIGTERM {
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
}

// supervise restarts the process if it exited while it should run, and
// counts such exits.
func (p *proc) supervise() {
	p.mu.Lock()
	down := p.mu.wantUp && p.mu.cmd != nil && closed(p.mu.done)
	if down {
		p.mu.exits++
	}
	p.mu.Unlock()
	if down {
		p.t.Logf("%s exited by itself; starting it again", p.name)
		p.start()
	}
}

func (p *proc) exits() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.exits
}

// tail returns the last n lines of the process's log.
func (p *proc) tail(n int) string {
	raw, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return fmt.Sprintf("---- %s (%s)\n%s", p.name, p.log, strings.Join(lines, "\n"))
}
