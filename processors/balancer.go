package processors

import (
	"maps"
	"slices"
	"sort"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// BalancerName is the group protocol name of CoPartitionBalancer. Every
// member of the processors' group must offer it.
const BalancerName = "stepwise-copartition"

// CoPartitionBalancer returns the group balancer of the processors.
//
// It assigns partition numbers, not topic partitions: a member given number
// p gets partition p of every topic it subscribes to (requests and results),
// so the starts, cancels and results of a request, which all live on its
// home partition, always reach the one member that holds its state.
//
// Rules, all deterministic for a given group (members arrive sorted by
// instance id, then member id):
//   - numbers 0..N-1, N the largest partition count of the group's topics;
//   - each member gets N/M numbers, and the members that owned the most in
//     the previous generation get the N%M extra ones;
//   - a member keeps the numbers it owned (sticky), within its quota; a
//     number two members claim goes to the claim of the newer generation,
//     then to the first member in order;
//   - free numbers go, in ascending order, to members in order until each
//     reaches its quota.
//
// It is eager, on purpose. With a cooperative protocol a rebalance revokes
// nothing from a member that keeps its partitions, and kgo's
// GroupTransactSession then waits, in End, for a heartbeat that only comes
// after the rebalance finished; when a member died that is its whole
// session timeout, longer than the transaction timeout, so the survivors'
// transactions time out. Eager revocation aborts the open transaction at
// once instead, and stickiness keeps the cost low: a processor keeps the
// state of a revoked partition and reuses it when the very next generation
// gives the partition back (see Processor.assigned).
//
// The built-in range balancer would also co-partition topics of equal
// partition counts, but it is not sticky: a member joining or leaving moves
// most partitions, and every moved partition must be restored.
//
// Each call returns a new balancer: it remembers the member's last
// assignment, because an eager kgo client forgets it when it revokes, and
// the member must claim it when it joins again for stickiness to work.
func CoPartitionBalancer() kgo.GroupBalancer { return &coBalancer{} }

type coBalancer struct {
	mu   sync.Mutex
	last map[string][]int32 // this member's assignment in the last generation it joined
}

func (*coBalancer) ProtocolName() string { return BalancerName }
func (*coBalancer) IsCooperative() bool  { return false }

func (b *coBalancer) JoinGroupMetadata(interests []string, current map[string][]int32, generation int32) []byte {
	if len(current) == 0 {
		b.mu.Lock()
		current = b.last
		b.mu.Unlock()
	}
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Version = 3
	meta.Topics = interests
	meta.Generation = generation
	for _, t := range slices.Sorted(maps.Keys(current)) {
		owned := kmsg.NewConsumerMemberMetadataOwnedPartition()
		owned.Topic = t
		owned.Partitions = slices.Sorted(slices.Values(current[t]))
		meta.OwnedPartitions = append(meta.OwnedPartitions, owned)
	}
	return meta.AppendTo(nil)
}

func (b *coBalancer) ParseSyncAssignment(assignment []byte) (map[string][]int32, error) {
	m, err := kgo.ParseConsumerSyncAssignment(assignment)
	if err == nil {
		last := make(map[string][]int32, len(m))
		for t, ps := range m {
			last[t] = slices.Clone(ps)
		}
		b.mu.Lock()
		b.last = last
		b.mu.Unlock()
	}
	return m, err
}

func (b *coBalancer) MemberBalancer(members []kmsg.JoinGroupResponseMember) (kgo.GroupMemberBalancer, map[string]struct{}, error) {
	cb, err := kgo.NewConsumerBalancer(b, members)
	return cb, cb.MemberTopics(), err
}

// Balance implements kgo.ConsumerBalancerBalance.
func (*coBalancer) Balance(cb *kgo.ConsumerBalancer, topics map[string]int32) kgo.IntoSyncAssignment {
	var n int32
	for _, c := range topics {
		n = max(n, c)
	}
	type member struct {
		topics []string
		owned  []int32 // partition numbers with a current claim, ascending
		quota  int
		got    []int32
	}

	// The newest generation claiming each topic partition; older claims
	// are stale (the member missed a rebalance).
	type tp struct {
		t string
		p int32
	}
	newest := map[tp]int32{}
	cb.EachMember(func(_ *kmsg.JoinGroupResponseMember, meta *kmsg.ConsumerMemberMetadata) {
		for _, o := range meta.OwnedPartitions {
			for _, p := range o.Partitions {
				if g, ok := newest[tp{o.Topic, p}]; !ok || meta.Generation > g {
					newest[tp{o.Topic, p}] = meta.Generation
				}
			}
		}
	})

	var ms []*member
	cb.EachMember(func(jm *kmsg.JoinGroupResponseMember, meta *kmsg.ConsumerMemberMetadata) {
		m := &member{topics: meta.Topics}
		seen := map[int32]bool{}
		for _, o := range meta.OwnedPartitions {
			for _, p := range o.Partitions {
				if p < n && meta.Generation >= newest[tp{o.Topic, p}] && !seen[p] {
					seen[p] = true
					m.owned = append(m.owned, p)
				}
			}
		}
		slices.Sort(m.owned)
		ms = append(ms, m)
	})
	if len(ms) == 0 {
		return cb.NewPlan()
	}

	// Quotas: the extra numbers go to the members owning the most.
	div, rem := int(n)/len(ms), int(n)%len(ms)
	byOwned := slices.Clone(ms)
	sort.SliceStable(byOwned, func(i, j int) bool { return len(byOwned[i].owned) > len(byOwned[j].owned) })
	for i, m := range byOwned {
		m.quota = div
		if i < rem {
			m.quota++
		}
	}

	taken := make([]bool, n)
	for _, m := range ms {
		for _, p := range m.owned {
			if len(m.got) < m.quota && !taken[p] {
				taken[p] = true
				m.got = append(m.got, p)
			}
		}
	}
	next := 0
	for _, m := range ms {
		for len(m.got) < m.quota {
			for taken[next] {
				next++
			}
			taken[next] = true
			m.got = append(m.got, int32(next))
		}
	}

	plan := cb.NewPlan()
	for i, m := range ms {
		jm, _ := cb.MemberAt(i)
		for _, t := range m.topics {
			for _, p := range m.got {
				if p < topics[t] {
					plan.AddPartition(jm, t, p)
				}
			}
		}
	}
	return plan
}
