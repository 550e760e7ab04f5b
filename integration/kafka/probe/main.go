// Command probe waits until a Kafka cluster started by integration/kafka/up
// is ready for tests, and exits non-zero when it is not ready in time.
//
// Ready means: a metadata request to the seeds is answered, the cluster
// reports a controller, at least -want brokers and, with -cluster-id, the id
// the storage was formatted with (so that another cluster already listening
// on the same port is not taken for ours), and, with -scram, a
// SCRAM-SHA-512 login as the test user succeeds on that listener (the user is
// created when the storage is formatted, so this also checks the format).
//
//	go run ./integration/kafka/probe -brokers 127.0.0.1:9092 -want 1 -scram 127.0.0.1:9096
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// errNotReady is returned by one attempt that reached the cluster but found
// it not yet complete.
var errNotReady = errors.New("stepwise: cluster not ready")

// errWrongCluster means something else answers on the probed address.
var errWrongCluster = errors.New("stepwise: another cluster answers")

func main() {
	brokers := flag.String("brokers", "127.0.0.1:9092", "comma-separated seed brokers")
	want := flag.Int("want", 1, "number of brokers the cluster must report")
	clusterID := flag.String("cluster-id", "", "cluster id the cluster must report (empty: any)")
	scramAddr := flag.String("scram", "", "SASL_PLAINTEXT listener to log in to with SCRAM-SHA-512 (empty: skip)")
	user := flag.String("user", "stepwise", "SCRAM user name")
	pass := flag.String("password", "stepwise-secret", "SCRAM password")
	timeout := flag.Duration("timeout", 60*time.Second, "give up after this long")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	start := time.Now()
	seeds := strings.Split(*brokers, ",")
	var last error
	for {
		last = attempt(ctx, seeds, *want, *clusterID, nil)
		if last == nil && *scramAddr != "" {
			mech := scram.Auth{User: *user, Pass: *pass}.AsSha512Mechanism()
			last = attempt(ctx, []string{*scramAddr}, *want, *clusterID, kgo.SASL(mech))
		}
		if errors.Is(last, errWrongCluster) {
			// Our broker could not bind the port; waiting will not help.
			fmt.Fprintf(os.Stderr, "probe: %v\n", last)
			os.Exit(1)
		}
		if last == nil {
			fmt.Printf("probe: cluster ready after %.1fs\n", time.Since(start).Seconds())
			return
		}
		select {
		case <-ctx.Done():
			fmt.Fprintf(os.Stderr, "probe: not ready after %s: %v\n", *timeout, last)
			os.Exit(1)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// attempt asks once for the cluster's metadata, bounded to a few seconds so
// that a broker that accepts connections but does not answer yet is retried.
func attempt(ctx context.Context, seeds []string, want int, clusterID string, extra kgo.Opt) error {
	opts := []kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.DialTimeout(2 * time.Second),
		kgo.RequestRetries(0),
	}
	if extra != nil {
		opts = append(opts, extra)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	actx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	md, err := kadm.NewClient(cl).BrokerMetadata(actx)
	if err != nil {
		return err
	}
	if clusterID != "" && md.Cluster != clusterID {
		return fmt.Errorf("%w: %s answers for cluster %q, not %q", errWrongCluster, strings.Join(seeds, ","), md.Cluster, clusterID)
	}
	if md.Controller < 0 || len(md.Brokers) < want {
		return fmt.Errorf("%w: %d of %d brokers, controller %d", errNotReady, len(md.Brokers), want, md.Controller)
	}
	return nil
}
