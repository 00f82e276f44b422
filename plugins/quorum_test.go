package plugins_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubectl-sts/kubectl-sts/plugins"
)

// membership of n voters etcd-0..etcd-(n-1); down lists ordinals that do
// not answer.
func membership(n int, down ...int) plugins.Membership {
	m := plugins.Membership{Engine: "etcd"}
	for i := 0; i < n; i++ {
		v := plugins.Voter{Name: fmt.Sprintf("etcd-%d", i), Pod: fmt.Sprintf("etcd-%d", i), Ordinal: i, Healthy: true}
		for _, d := range down {
			if d == i {
				v.Healthy = false
			}
		}
		m.Voters = append(m.Voters, v)
	}
	return m
}

// reversed lists m's voters in reverse, as etcd may (by member ID).
func reversed(m plugins.Membership) plugins.Membership {
	slices.Reverse(m.Voters)
	return m
}

func TestQuorum(t *testing.T) {
	for n, want := range map[int]int{1: 1, 2: 2, 3: 2, 4: 3, 5: 3, 6: 4, 7: 4} {
		assert.Equal(t, want, plugins.Quorum(n), "quorum of %d", n)
	}
}

func TestCheckRemoval(t *testing.T) {
	cases := []struct {
		name     string
		m        plugins.Membership
		remove   []int
		want     []string // substrings, one per reason, in order
		wantNone bool
	}{
		{name: "5 to 3, all healthy", m: membership(5), remove: []int{4, 3}, wantNone: true},
		{name: "3 to 1, all healthy", m: membership(3), remove: []int{2, 1}, wantNone: true},
		{name: "5 to 3 with a removed member down", m: membership(5, 4), remove: []int{4, 3}, wantNone: true},
		{name: "5 to 3 with a staying member down", m: membership(5, 1), remove: []int{4, 3},
			want: []string{"removing etcd-4 leaves 4 voters of which 3 answer (etcd-0, etcd-2, etcd-3), only the quorum of 3, while etcd-1 does not answer: one more failure would stop the etcd cluster, which tolerates 1 now; bring back etcd-1 first"}},
		{name: "5 to 4 with a staying member down", m: membership(5, 0), remove: []int{4},
			want: []string{"removing etcd-4 leaves 4 voters of which 3 answer (etcd-1, etcd-2, etcd-3), only the quorum of 3, while etcd-0 does not answer"}},
		{name: "names in ordinal order", m: reversed(membership(5, 1)), remove: []int{4},
			want: []string{"leaves 4 voters of which 3 answer (etcd-0, etcd-2, etcd-3)"}},
		{name: "7 to 5 with a staying member down", m: membership(7, 0), remove: []int{6, 5}, wantNone: true},
		// Already at quorum (3 of 5): removing the lost etcd-4 and then
		// etcd-3 keeps it there, never lower.
		{name: "5 to 3 with a removed and a staying member down", m: membership(5, 4, 0), remove: []int{4, 3}, wantNone: true},
		{name: "3 to 1 with one member down", m: membership(3, 0), remove: []int{2, 1},
			want: []string{"removing etcd-2 leaves 2 voters of which 1 answer (etcd-1), below the quorum of 2: the etcd cluster would stop accepting writes; bring back etcd-0 first"}},
		{name: "5 to 2 with one member down", m: membership(5, 0), remove: []int{4, 3, 2},
			want: []string{
				"removing etcd-2 leaves 2 voters of which 1 answer (etcd-1), below the quorum of 2",
				"with 2 voters etcd needs both for quorum (2)",
			}},
		{name: "3 to 2", m: membership(3), remove: []int{2}, want: []string{"with 2 voters etcd needs both for quorum (2): losing either member"}},
		{name: "5 to 3 with two staying members down", m: membership(5, 0, 1), remove: []int{4, 3},
			want: []string{"removing etcd-4 leaves 4 voters of which 2 answer (etcd-2, etcd-3), below the quorum of 3"}},
		{name: "quorum already lost", m: membership(3, 0, 1), remove: []int{2},
			want: []string{"the etcd membership has lost quorum already: 1 of 3 voters answer (etcd-2), 2 are needed", "with 2 voters etcd needs both"}},
		{name: "already removed ordinals change nothing", m: membership(3), remove: []int{4, 3}, wantNone: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := c.m.CheckRemoval(c.remove)
			if c.wantNone {
				assert.Empty(t, got)
				return
			}
			require.Len(t, got, len(c.want), "%q", got)
			for i, w := range c.want {
				assert.Contains(t, got[i], w)
			}
		})
	}
}

func TestDeadVoterCountsAgainstQuorum(t *testing.T) {
	m := membership(3)
	m.Voters = append(m.Voters, plugins.Voter{Name: "8e9e05c52164694d", Ordinal: -1})
	// 4 voters, 3 answer; removing etcd-2 leaves 3 voters of which 2 answer: fine.
	assert.Empty(t, m.CheckRemoval([]int{2}))
	// Removing etcd-2 and etcd-1 leaves etcd-0 and the dead voter: 1 of 2.
	got := m.CheckRemoval([]int{2, 1})
	require.NotEmpty(t, got)
	assert.Contains(t, got[0], "removing etcd-1 leaves 2 voters of which 1 answer (etcd-0), below the quorum of 2")
	assert.Contains(t, got[0], "bring back 8e9e05c52164694d (no pod) first")
}

func TestLostReason(t *testing.T) {
	assert.Empty(t, membership(3).LostReason())
	assert.Equal(t, "the etcd cluster has already lost etcd-1: 2 of 3 voters answer and quorum is 2, so restarting another member would leave 1; restore it before rolling out",
		membership(3, 1).LostReason())
}

func TestStaticMembershipRefusesAnyVoterRemoval(t *testing.T) {
	m := membership(5)
	m.Static = "dynamic reconfiguration is off"
	assert.Equal(t, []string{"dynamic reconfiguration is off"}, m.CheckRemoval([]int{4, 3}))
	assert.Empty(t, m.CheckRemoval([]int{7}), "no voter removed, nothing to refuse")

	// A removed observer's server.N line stays in every server's static
	// configuration just the same: refused too, before anything changes.
	m.Learners = []plugins.Voter{{Name: "server.6", Pod: "etcd-5", Ordinal: 5, Healthy: true}}
	assert.Equal(t, []string{"dynamic reconfiguration is off"}, m.CheckRemoval([]int{5}))
}
