package processors

import (
	"maps"
	"slices"
	"sort"

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
//   - each member gets N/M numbers, and the members that already own the most
//     get the N%M extra ones, so a rebalance moves as few numbers as it can;
//   - a member keeps the numbers it owns (sticky), within its quota; a number
//     two members claim goes to the claim of the newer generation, then to
//     the first member in order;
//   - free numbers go, in ascending order, to members in order until each
//     reaches its quota.
//
// It is cooperative (KIP-429): a number moving between members is first
// revoked from its owner, and only assigned to the new member in the
// follow-up rebalance, so no partition ever has two owners. Finally, a
// member never gets partition p of one topic without partition p of all
// its other topics: such a number is held back from the plan entirely
// (it can only happen while ownership was split by an older balancer).
//
// The built-in range balancer would also co-partition topics of equal
// partition counts, but it is eager: each rebalance would revoke, and make
// every processor restore, all partitions.
func CoPartitionBalancer() kgo.GroupBalancer { return coBalancer{} }

type coBalancer struct{}

func (coBalancer) ProtocolName() string { return BalancerName }
func (coBalancer) IsCooperative() bool  { return true }

func (coBalancer) JoinGroupMetadata(interests []string, current map[string][]int32, generation int32) []byte {
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

func (coBalancer) ParseSyncAssignment(assignment []byte) (map[string][]int32, error) {
	return kgo.ParseConsumerSyncAssignment(assignment)
}

func (b coBalancer) MemberBalancer(members []kmsg.JoinGroupResponseMember) (kgo.GroupMemberBalancer, map[string]struct{}, error) {
	cb, err := kgo.NewConsumerBalancer(b, members)
	return cb, cb.MemberTopics(), err
}

// Balance implements kgo.ConsumerBalancerBalance.
func (coBalancer) Balance(cb *kgo.ConsumerBalancer, topics map[string]int32) kgo.IntoSyncAssignment {
	var n int32
	for _, c := range topics {
		n = max(n, c)
	}
	type member struct {
		id     string
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
		m := &member{id: jm.MemberID, topics: meta.Topics}
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
	plan.AdjustCooperative(cb)

	// Hold back any number the cooperative adjustment split across topics.
	byID := plan.AsMemberIDMap()
	for _, m := range ms {
		assigned := byID[m.id]
		for _, p := range m.got {
			whole := true
			for _, t := range m.topics {
				if p < topics[t] && !slices.Contains(assigned[t], p) {
					whole = false
				}
			}
			if whole {
				continue
			}
			for t, ps := range assigned {
				assigned[t] = slices.DeleteFunc(ps, func(q int32) bool { return q == p })
			}
		}
	}
	return plan
}
