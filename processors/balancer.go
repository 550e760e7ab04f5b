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

// Balance implements kgo.ConsumerBalancerBalance: it decodes the members'
// current claims, assigns partition numbers (assign) and gives each member
// that number of every topic it consumes.
func (*coBalancer) Balance(cb *kgo.ConsumerBalancer, topics map[string]int32) kgo.IntoSyncAssignment {
	var n int32
	for _, c := range topics {
		n = max(n, c)
	}
	interests, owned := currentClaims(cb, n)
	plan := cb.NewPlan()
	for i, got := range assign(n, owned) {
		jm, _ := cb.MemberAt(i)
		for _, t := range interests[i] {
			for _, p := range got {
				if p < topics[t] {
					plan.AddPartition(jm, t, p)
				}
			}
		}
	}
	return plan
}

// currentClaims decodes, per member in the order of cb, the topics it
// consumes and the partition numbers below n it holds with a current claim
// (ascending). A claim is current when no member claims the same topic
// partition from a newer generation (the older one missed a rebalance).
func currentClaims(cb *kgo.ConsumerBalancer, n int32) (interests [][]string, owned [][]int32) {
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
	cb.EachMember(func(_ *kmsg.JoinGroupResponseMember, meta *kmsg.ConsumerMemberMetadata) {
		var mine []int32
		seen := map[int32]bool{}
		for _, o := range meta.OwnedPartitions {
			for _, p := range o.Partitions {
				if p < n && meta.Generation >= newest[tp{o.Topic, p}] && !seen[p] {
					seen[p] = true
					mine = append(mine, p)
				}
			}
		}
		slices.Sort(mine)
		interests = append(interests, meta.Topics)
		owned = append(owned, mine)
	})
	return interests, owned
}

// assign gives every partition number 0..n-1 to exactly one of the members
// (owned[i]: the numbers member i holds now, ascending, none twice among
// members) and returns each member's numbers. Every member gets n/members
// or one more (the extra ones go to the members owning the most), and
// keeps as many of its own numbers as its share allows; the rest go to the
// members short of their share, lowest numbers first. It is pure: the
// same claims always give the same assignment.
func assign(n int32, owned [][]int32) [][]int32 {
	got := make([][]int32, len(owned))
	if len(owned) == 0 {
		return got
	}
	quota := make([]int, len(owned))
	div, rem := int(n)/len(owned), int(n)%len(owned)
	byOwned := make([]int, len(owned))
	for i := range byOwned {
		byOwned[i] = i
	}
	sort.SliceStable(byOwned, func(a, b int) bool { return len(owned[byOwned[a]]) > len(owned[byOwned[b]]) })
	for rank, i := range byOwned {
		quota[i] = div
		if rank < rem {
			quota[i]++
		}
	}
	taken := make([]bool, n)
	for i, mine := range owned {
		for _, p := range mine {
			if len(got[i]) < quota[i] && !taken[p] {
				taken[p] = true
				got[i] = append(got[i], p)
			}
		}
	}
	next := 0
	for i := range owned {
		for len(got[i]) < quota[i] {
			for taken[next] {
				next++
			}
			taken[next] = true
			got[i] = append(got[i], int32(next))
		}
	}
	return got
}
