package scaledown

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestExpandSlotName(t *testing.T) {
	assert.Equal(t, "replica_4", ExpandSlotName("replica_{ordinal}", "db", 4))
	assert.Equal(t, "db_4", ExpandSlotName("{pod}", "db", 4))
	assert.Equal(t, "pg_my_db_12_x", ExpandSlotName("pg_{pod}_x", "my-db", 12))
	assert.Equal(t, "fixed", ExpandSlotName("fixed", "db", 4))
	assert.Equal(t, []string{"a_3", "b_db_3"}, SlotNamesFor([]string{"a_{ordinal}", "b_{pod}"}, "db", 3))
	assert.Nil(t, SlotNamesFor(nil, "db", 3))
}

func TestValidateSlotNames(t *testing.T) {
	cases := []struct {
		name      string
		templates []string
		ordinals  []int
		err       string
	}{
		{"placeholder with several ordinals", []string{"replica_{ordinal}"}, []int{4, 3}, ""},
		{"pod placeholder", []string{"{pod}"}, []int{4, 3}, ""},
		{"fixed name for one ordinal", []string{"standby1"}, []int{4}, ""},
		{"fixed name for several ordinals", []string{"standby1"}, []int{4, 3}, "names one slot, but 2 ordinals are removed"},
		{"upper case", []string{"Replica_{ordinal}"}, []int{4}, "not a valid replication slot name"},
		{"quote", []string{"x'; drop table t; --"}, []int{4}, "not a valid replication slot name"},
		{"shell", []string{"$(reboot)"}, []int{4}, "not a valid replication slot name"},
		{"dash from the statefulset name is replaced", []string{"{pod}"}, []int{4}, ""},
		{"too long", []string{strings.Repeat("a", 62) + "_{ordinal}"}, []int{10}, "not a valid replication slot name"},
		{"63 bytes is fine", []string{strings.Repeat("a", 61) + "_{ordinal}"}, []int{4}, ""},
		{"empty", []string{""}, []int{4}, "not a valid replication slot name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := ValidateSlotNames(c.templates, "my-db", c.ordinals)
			if c.err == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.err)
		})
	}
}
