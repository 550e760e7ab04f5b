package bench

import (
	"context"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/topology"
)

// StateFigures are read back from a run's state topic: what the processors
// wrote, and how much state one request holds at its largest.
type StateFigures struct {
	Records       int   `json:"records"`        // state records written (tombstones included)
	Bytes         int64 `json:"bytes"`          // key + value bytes written
	Requests      int   `json:"requests"`       // distinct requests
	LargestRecord int   `json:"largest_record"` // largest value, bytes
	// BytesPerRequest is Bytes / Requests: what one request writes over
	// its life.
	BytesPerRequest float64 `json:"bytes_written_per_request"`
	// LivePerRequest is, averaged over requests, the largest total of the
	// latest values of a request's keys (its own and its children's) at
	// any point of its life: what compaction leaves of an in-flight
	// request at its widest, the restore cost of one request.
	LivePerRequest    float64 `json:"live_bytes_per_request"`
	MaxLivePerRequest int64   `json:"max_live_bytes_per_request"`
}

// readState reads the state topic under p from its start to its current
// end and measures it.
func (r *runner) readState(ctx context.Context, p topology.Prefix) (*StateFigures, error) {
	adm, err := r.client(p)
	if err != nil {
		return nil, err
	}
	ends, err := kadm.NewClient(adm).ListEndOffsets(ctx, p.State())
	adm.Close()
	if err != nil {
		return nil, err
	}
	left := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	cl, err := r.client(p, kgo.ConsumeTopics(p.State()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	acc := newStateAccount()
	for len(left) > 0 {
		// Transaction markers and aborted records are never delivered, so
		// a partition may stop short of its end offset: an empty poll
		// after a quiet second ends the read.
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if fs.NumRecords() == 0 {
			break
		}
		fs.EachRecord(func(rec *kgo.Record) {
			acc.add(string(rec.Key), rec.Value)
			if end, ok := left[rec.Partition]; ok && rec.Offset >= end-1 {
				delete(left, rec.Partition)
			}
		})
	}
	return acc.figures(), nil
}

// stateAccount sums state records in topic order.
type stateAccount struct {
	f       StateFigures
	keySize map[string]int   // latest value size per key
	live    map[string]int64 // per request: current total of its keys
	peak    map[string]int64 // per request: largest total seen
}

func newStateAccount() *stateAccount {
	return &stateAccount{keySize: map[string]int{}, live: map[string]int64{}, peak: map[string]int64{}}
}

// add accounts one record; value nil is a tombstone.
func (a *stateAccount) add(key string, value []byte) {
	a.f.Records++
	a.f.Bytes += int64(len(key) + len(value))
	a.f.LargestRecord = max(a.f.LargestRecord, len(value))
	req, _, _ := strings.Cut(key, "/")
	a.live[req] += int64(len(value) - a.keySize[key])
	if value == nil {
		delete(a.keySize, key)
	} else {
		a.keySize[key] = len(value)
	}
	a.peak[req] = max(a.peak[req], a.live[req])
}

func (a *stateAccount) figures() *StateFigures {
	f := a.f
	f.Requests = len(a.peak)
	if f.Requests == 0 {
		return &f
	}
	var sum int64
	for _, p := range a.peak {
		sum += p
		f.MaxLivePerRequest = max(f.MaxLivePerRequest, p)
	}
	f.BytesPerRequest = float64(f.Bytes) / float64(f.Requests)
	f.LivePerRequest = float64(sum) / float64(f.Requests)
	return &f
}
