package processors

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// group simulates the classic eager protocol around a balancer: members
// give up everything, join with what they owned, the leader balances, and
// each member then owns exactly its assignment.
type group struct {
	t      *testing.T
	b      kgo.GroupBalancer
	topics map[string]int32
	gen    int32
	owned  map[string]map[string][]int32 // member => topic => partitions
}

func (g *group) join(id string)  { g.owned[id] = map[string][]int32{} }
func (g *group) leave(id string) { delete(g.owned, id) }

// round runs one rebalance.
func (g *group) round() {
	g.t.Helper()
	interests := slices.Sorted(maps.Keys(g.topics))
	var members []kmsg.JoinGroupResponseMember
	for _, id := range slices.Sorted(maps.Keys(g.owned)) {
		m := kmsg.NewJoinGroupResponseMember()
		m.MemberID = id
		m.ProtocolMetadata = g.b.JoinGroupMetadata(interests, g.owned[id], g.gen)
		members = append(members, m)
	}
	g.gen++
	plan := g.balance(members)
	if again := g.balance(members); !maps.EqualFunc(plan, again, func(a, b map[string][]int32) bool {
		return maps.EqualFunc(a, b, slices.Equal)
	}) {
		g.t.Fatalf("balance is not deterministic:\n%v\n%v", plan, again)
	}

	for id := range g.owned {
		g.owned[id] = plan[id]
		g.checkCoPartitioned(id)
	}
}

func (g *group) balance(members []kmsg.JoinGroupResponseMember) map[string]map[string][]int32 {
	mb, _, err := g.b.MemberBalancer(members)
	if err != nil {
		g.t.Fatal(err)
	}
	into, err := mb.(kgo.GroupMemberBalancerOrError).BalanceOrError(g.topics)
	if err != nil {
		g.t.Fatal(err)
	}
	out := map[string]map[string][]int32{}
	for _, a := range into.IntoSyncAssignment() {
		parsed, err := g.b.ParseSyncAssignment(a.MemberAssignment)
		if err != nil {
			g.t.Fatal(err)
		}
		for t, ps := range parsed {
			if len(ps) == 0 {
				delete(parsed, t)
			}
		}
		out[a.MemberID] = parsed
	}
	return out
}

func (g *group) checkCoPartitioned(id string) {
	g.t.Helper()
	var ref []int32
	first := true
	for _, t := range slices.Sorted(maps.Keys(g.topics)) {
		ps := slices.Sorted(slices.Values(g.owned[id][t]))
		if first {
			ref, first = ps, false
			continue
		}
		if !slices.Equal(ps, ref) {
			g.t.Fatalf("member %s is not co-partitioned: %v", id, g.owned[id])
		}
	}
}

// settle rebalances once and checks the outcome.
func (g *group) settle() {
	g.t.Helper()
	g.round()
	// Everything is owned exactly once, and evenly.
	n := g.topics["requests"]
	count := map[int32]int{}
	lo, hi := int(n), 0
	for _, o := range g.owned {
		ps := o["requests"]
		lo, hi = min(lo, len(ps)), max(hi, len(ps))
		for _, p := range ps {
			count[p]++
		}
	}
	for p := range n {
		if count[p] != 1 {
			g.t.Fatalf("partition %d owned %d times: %v", p, count[p], g.owned)
		}
	}
	if len(g.owned) > 0 && hi-lo > 1 {
		g.t.Fatalf("unbalanced: %d to %d partitions per member: %v", lo, hi, g.owned)
	}
}

func TestCoPartitionBalancer(t *testing.T) {
	for parts := int32(1); parts <= 16; parts++ {
		for start := 1; start <= 6; start++ {
			t.Run(fmt.Sprintf("p%d-m%d", parts, start), func(t *testing.T) {
				g := &group{t: t, b: CoPartitionBalancer(), owned: map[string]map[string][]int32{},
					topics: map[string]int32{"requests": parts, "results": parts}}
				for i := range start {
					g.join(fmt.Sprintf("m%02d", i))
				}
				g.settle()

				// A member joins: only what it takes moves.
				before := g.ownerOf()
				g.join("m50")
				g.settle()
				moved := 0
				for p, o := range g.ownerOf() {
					if before[p] != o {
						moved++
					}
				}
				if want := len(g.owned["m50"]["requests"]); moved != want {
					t.Fatalf("join moved %d partitions, the new member took %d", moved, want)
				}

				// Members die, others join, twice.
				g.leave("m00")
				g.join("m07")
				g.settle()
				if start > 1 {
					g.leave("m01")
				}
				g.leave("m50")
				g.settle()
			})
		}
	}
}

func (g *group) ownerOf() map[int32]string {
	out := map[int32]string{}
	for id, o := range g.owned {
		for _, p := range o["requests"] {
			out[p] = id
		}
	}
	return out
}

// A member that missed rebalances rejoins claiming partitions another member
// owned since: the newer claims win the stickiness.
func TestCoPartitionBalancerStaleClaim(t *testing.T) {
	g := &group{t: t, b: CoPartitionBalancer(), owned: map[string]map[string][]int32{},
		topics: map[string]int32{"requests": 4, "results": 4}}
	g.join("a")
	g.join("b")
	g.settle()
	stale := maps.Clone(g.owned["a"])
	g.leave("a")
	g.settle()
	interests := []string{"requests", "results"}
	var members []kmsg.JoinGroupResponseMember
	for _, m := range []struct {
		id    string
		owned map[string][]int32
		gen   int32
	}{{"a", stale, g.gen - 2}, {"b", g.owned["b"], g.gen}} {
		jm := kmsg.NewJoinGroupResponseMember()
		jm.MemberID = m.id
		jm.ProtocolMetadata = g.b.JoinGroupMetadata(interests, m.owned, m.gen)
		members = append(members, jm)
	}
	plan := g.balance(members)
	if len(plan["a"]["requests"]) != 2 {
		t.Fatalf("plan %v", plan)
	}
	for _, p := range plan["a"]["requests"] {
		if slices.Contains(stale["requests"], p) {
			t.Fatalf("stale claim on %d won over the newer owner: %v", p, plan)
		}
	}
}

// assign, as a pure function: every number once, shares within one of
// each other, claims kept up to the share, the same answer every time.
func TestAssign(t *testing.T) {
	for _, tc := range []struct {
		name  string
		n     int32
		owned [][]int32
		want  [][]int32
	}{
		{"first join", 4, [][]int32{nil}, [][]int32{{0, 1, 2, 3}}},
		{"a second member takes the tail of nothing it owns", 4, [][]int32{{0, 1, 2, 3}, nil}, [][]int32{{0, 1}, {2, 3}}},
		{"claims kept", 6, [][]int32{{1, 4}, {0, 3}, {2, 5}}, [][]int32{{1, 4}, {0, 3}, {2, 5}}},
		{"the extra number goes to the member owning most", 5, [][]int32{{0}, {1, 2, 3, 4}}, [][]int32{{0, 4}, {1, 2, 3}}},
		{"a member left: its numbers go to those short of their share", 6, [][]int32{{0, 1}, {4, 5}}, [][]int32{{0, 1, 2}, {4, 5, 3}}},
		{"more members than numbers", 2, [][]int32{{1}, nil, nil}, [][]int32{{1}, {0}, nil}},
		{"no members", 3, nil, [][]int32{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := assign(tc.n, tc.owned)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("assign(%d, %v) = %v, want %v", tc.n, tc.owned, got, tc.want)
			}
			seen := map[int32]int{}
			lo, hi := int(tc.n), 0
			for _, g := range got {
				lo, hi = min(lo, len(g)), max(hi, len(g))
				for _, p := range g {
					seen[p]++
				}
			}
			for p := range tc.n {
				if len(tc.owned) > 0 && seen[p] != 1 {
					t.Errorf("number %d assigned %d times", p, seen[p])
				}
			}
			if len(got) > 0 && hi-lo > 1 {
				t.Errorf("shares from %d to %d", lo, hi)
			}
		})
	}
}
