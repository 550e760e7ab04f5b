//go:build integration

package chaos

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// portOffset moves the soak's cluster off the ports of CI's broker (9092)
// and of every other test cluster: plaintext 14092-14094, SASL
// 14096-14098, controllers 14192-14194.
const portOffset = 5000

// cluster is the soak's private three-node KRaft cluster, started by
// integration/kafka/up in a run directory of its own. Nodes are killed,
// stopped and started again one at a time, with the command line `up`
// gave them.
type cluster struct {
	t     *testing.T
	dir   string
	seeds []string
	argv  [3][]string // each node's command line, read from /proc at start
	pids  [3]int
}

// startCluster runs `up --brokers 3` and makes the cluster strict: every
// write needs two in-sync replicas, and no replica out of sync may become
// leader.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	c := &cluster{t: t, dir: filepath.Join(os.TempDir(), fmt.Sprintf("stepwise-chaos-%d", os.Getpid()))}
	for i := range 3 {
		c.seeds = append(c.seeds, "127.0.0.1:"+strconv.Itoa(9092+i+portOffset))
	}
	c.script("up", "--brokers", "3", "--run-dir", c.dir, "--port-offset", strconv.Itoa(portOffset))
	t.Cleanup(func() { c.script("down", "--run-dir", c.dir) })
	for i := range 3 {
		pid := c.readPID(i)
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			t.Fatalf("node %d: %v", i+1, err)
		}
		c.argv[i] = strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		c.pids[i] = pid
	}
	adm := c.admin()
	defer adm.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resps, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{
		{Name: "min.insync.replicas", Value: kadm.StringPtr("2")},
		{Name: "unclean.leader.election.enable", Value: kadm.StringPtr("false")},
	})
	if err == nil {
		for _, r := range resps {
			if r.Err != nil {
				err = fmt.Errorf("%v: %s", r.Err, r.ErrMessage)
			}
		}
	}
	if err != nil {
		t.Fatalf("cluster configs: %v", err)
	}
	return c
}

func (c *cluster) script(name string, args ...string) {
	c.t.Helper()
	cmd := exec.Command(filepath.Join("..", "kafka", name), args...)
	// Three JVMs starting on a shared machine can take more than up's
	// default minute.
	cmd.Env = append(os.Environ(), "KAFKA_UP_TIMEOUT="+cmp.Or(os.Getenv("KAFKA_UP_TIMEOUT"), "180s"))
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("integration/kafka/%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func (c *cluster) readPID(i int) int {
	c.t.Helper()
	raw, err := os.ReadFile(filepath.Join(c.dir, fmt.Sprintf("node-%d.pid", i+1)))
	if err != nil {
		c.t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		c.t.Fatal(err)
	}
	return pid
}

// admin returns an admin client of the cluster; close it.
func (c *cluster) admin() *kadm.Client {
	c.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.seeds...))
	if err != nil {
		c.t.Fatal(err)
	}
	return kadm.NewClient(cl)
}

// signal sends sig to node i and, for SIGKILL and SIGTERM, waits for it
// to exit (SIGTERM: a controlled shutdown, up to 60 s).
func (c *cluster) signal(i int, sig syscall.Signal) {
	c.t.Helper()
	pid := c.pids[i]
	if err := syscall.Kill(pid, sig); err != nil {
		c.t.Fatalf("node %d (pid %d): %v", i+1, pid, err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			c.t.Fatalf("node %d (pid %d) still running 60 s after %v", i+1, pid, sig)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// start starts node i again on its data, as `up` did (its own session, so
// it outlives signals to the test), and waits until every partition is
// fully replicated again.
func (c *cluster) start(i int) {
	c.t.Helper()
	logs := filepath.Join(c.dir, fmt.Sprintf("node-%d", i+1), "logs", "stdout.log")
	out, err := os.OpenFile(logs, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(c.argv[i][0], c.argv[i][1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start node %d: %v", i+1, err)
	}
	c.pids[i] = cmd.Process.Pid
	go cmd.Wait() // reaps it when `down` stops it
	if err := os.WriteFile(filepath.Join(c.dir, fmt.Sprintf("node-%d.pid", i+1)), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		c.t.Fatal(err)
	}
	c.waitReplicated(2 * time.Minute)
}

// waitReplicated waits until all three brokers are up and every partition
// has its three replicas in sync, or timeout.
func (c *cluster) waitReplicated(timeout time.Duration) {
	c.t.Helper()
	adm := c.admin()
	defer adm.Close()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		md, err := adm.Metadata(ctx)
		cancel()
		if err == nil {
			behind := 0
			for _, td := range md.Topics {
				for _, pd := range td.Partitions {
					if len(pd.ISR) < len(pd.Replicas) {
						behind++
					}
				}
			}
			if len(md.Brokers) == 3 && behind == 0 {
				return
			}
			last = fmt.Sprintf("%d brokers, %d partitions under-replicated", len(md.Brokers), behind)
		} else {
			last = err.Error()
		}
		time.Sleep(500 * time.Millisecond)
	}
	// Going on is safe, if slow: with two replicas required in sync and
	// no unclean election, a partition short of replicas refuses writes
	// rather than losing them. The checker measures the stall.
	c.t.Logf("cluster not fully replicated after %s: %s; going on", timeout, last)
}
