package expand

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/kubectl-sts/kubectl-sts/plugins"
)

func members(roles ...plugins.Role) []plugins.Member {
	out := make([]plugins.Member, len(roles))
	for i, r := range roles {
		out[i] = plugins.Member{Pod: "db-" + string(rune('0'+i)), Ordinal: i, Role: r}
	}
	return out
}

func TestOrder(t *testing.T) {
	p, r := plugins.RolePrimary, plugins.RoleReplica
	for _, tc := range []struct {
		name     string
		ordinals []int
		members  []plugins.Member
		want     []int
		note     string
	}{
		{"no engine: highest first", []int{0, 1, 2}, nil, []int{2, 1, 0}, ""},
		{"unsorted input", []int{1, 3, 0, 2}, nil, []int{3, 2, 1, 0}, ""},
		{"primary 0 last", []int{0, 1, 2}, members(p, r, r), []int{2, 1, 0}, ""},
		{"primary in the middle goes last", []int{0, 1, 2, 3}, members(r, p, r, r), []int{3, 2, 0, 1}, ""},
		{"primary highest goes last", []int{0, 1, 2}, members(r, r, p), []int{1, 0, 2}, ""},
		{"primary not among the ordinals", []int{1, 2}, members(p, r, r), []int{2, 1}, ""},
		{"no primary", []int{0, 1, 2}, members(r, r, r), []int{2, 1, 0}, "no member reported itself primary"},
		{"two primaries", []int{0, 1, 2}, members(p, p, r), []int{2, 1, 0}, "several members report themselves primary (db-0, db-1)"},
		{"empty", nil, nil, []int{}, ""},
	} {
		got, note := Order(tc.ordinals, tc.members)
		if len(tc.want) == 0 {
			assert.Empty(t, got, tc.name)
		} else {
			assert.Equal(t, tc.want, got, tc.name)
		}
		if tc.note == "" {
			assert.Empty(t, note, tc.name)
		} else {
			assert.Contains(t, note, tc.note, tc.name)
		}
	}
}

func TestOrderDoesNotModifyItsInput(t *testing.T) {
	in := []int{0, 1, 2}
	_, _ = Order(in, members(plugins.RoleReplica, plugins.RolePrimary, plugins.RoleReplica))
	assert.Equal(t, []int{0, 1, 2}, in)
}
