package rollout

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseSteps(t *testing.T) {
	cases := []struct {
		in      []string
		want    string
		wantErr string
	}{
		{in: nil, want: ""},
		{in: []string{"1,25%,50%,100%"}, want: "1,25%,50%,100%"},
		{in: []string{"1", "50%", "100%"}, want: "1,50%,100%"},
		{in: []string{" 2 , 100% "}, want: "2,100%"},
		{in: []string{"1,,100%"}, wantErr: "empty item"},
		{in: []string{"abc"}, wantErr: `"abc" is neither a count`},
		{in: []string{"1.5"}, wantErr: "neither a count"},
		{in: []string{"0,100%"}, wantErr: "greater than zero"},
		{in: []string{"-1"}, wantErr: "greater than zero"},
		{in: []string{"150%"}, wantErr: "over 100%"},
		{in: []string{"50%,25%,100%"}, wantErr: "not increasing"},
		{in: []string{"3,2"}, wantErr: "not increasing"},
		{in: []string{"2,2"}, wantErr: "not increasing"},
	}
	for _, tc := range cases {
		got, err := ParseSteps(tc.in)
		if tc.wantErr != "" {
			assert.ErrorContains(t, err, tc.wantErr, "%q", tc.in)
			continue
		}
		require.NoError(t, err, "%q", tc.in)
		assert.Equal(t, tc.want, joinSpecs(got), "%q", tc.in)
	}
}

func partitions(p Plan) []int32 {
	out := make([]int32, len(p.Steps))
	for i, s := range p.Steps {
		out[i] = s.Partition
	}
	return out
}

func TestBuildPlan(t *testing.T) {
	cases := []struct {
		name            string
		replicas, start int32
		steps           string
		partitions      []int32
		pods            [][]string
		notes           int
		wantErr         string
	}{
		{name: "default is canary then one at a time", replicas: 3, partitions: []int32{2, 1, 0},
			pods: [][]string{{"db-2"}, {"db-1"}, {"db-0"}}},
		{name: "counts and percentages", replicas: 5, steps: "1,50%,100%", partitions: []int32{4, 2, 0},
			pods: [][]string{{"db-4"}, {"db-3", "db-2"}, {"db-1", "db-0"}}},
		{name: "percentages round up", replicas: 5, steps: "1,25%,50%,100%", partitions: []int32{4, 3, 2, 0},
			pods: [][]string{{"db-4"}, {"db-3"}, {"db-2"}, {"db-1", "db-0"}}},
		{name: "rounding merges equal steps", replicas: 4, steps: "1,25%,50%,100%", partitions: []int32{3, 2, 0}, notes: 1},
		{name: "one replica", replicas: 1, steps: "1,25%,50%,100%", partitions: []int32{0}, notes: 3,
			pods: [][]string{{"db-0"}}},
		{name: "one replica default", replicas: 1, partitions: []int32{0}, pods: [][]string{{"db-0"}}},
		{name: "ordinals start at 10", replicas: 3, start: 10, steps: "1,100%", partitions: []int32{2, 0},
			pods: [][]string{{"db-12"}, {"db-11", "db-10"}}},
		{name: "last count equals replicas", replicas: 4, steps: "2,4", partitions: []int32{2, 0}},
		{name: "small percent of many", replicas: 200, steps: "1%,10%,100%", partitions: []int32{198, 180, 0}},
		{name: "does not end at 100%", replicas: 5, steps: "1,50%", wantErr: "does not end at 100%"},
		{name: "count over replicas", replicas: 3, steps: "1,5", wantErr: "does not end at 100%"},
		{name: "count over replicas mid-plan", replicas: 3, steps: "5,100%", wantErr: "more than the 3 replicas"},
		{name: "mixed kinds decreasing", replicas: 4, steps: "3,25%,100%", wantErr: "not increasing for 4 replicas"},
		{name: "zero replicas", replicas: 0, steps: "100%", wantErr: "0 replicas"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var specs []StepSpec
			if tc.steps != "" {
				var err error
				specs, err = ParseSteps([]string{tc.steps})
				require.NoError(t, err)
			}
			p, err := BuildPlan("db", tc.replicas, tc.start, specs)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.partitions, partitions(p))
			assert.Len(t, p.Notes, tc.notes)
			for i, want := range tc.pods {
				assert.Equal(t, want, p.Steps[i].Pods, "step %d", i+1)
			}
			// Every pod is moved exactly once, highest ordinal first.
			var all []int32
			for _, s := range p.Steps {
				all = append(all, s.Ordinals...)
				assert.Equal(t, tc.replicas-s.Updated, s.Partition)
			}
			require.Len(t, all, int(tc.replicas))
			for i, o := range all {
				assert.Equal(t, tc.start+tc.replicas-1-int32(i), o)
			}
		})
	}
}

func TestFirstPendingAndUpdatedPods(t *testing.T) {
	p, err := BuildPlan("db", 5, 0, []StepSpec{{Value: 1}, {Value: 50, Percent: true}, {Value: 100, Percent: true}})
	require.NoError(t, err)
	assert.Equal(t, 0, p.FirstPending(0))
	assert.Equal(t, 1, p.FirstPending(1))
	assert.Equal(t, 1, p.FirstPending(2))
	assert.Equal(t, 2, p.FirstPending(3))
	assert.Equal(t, 3, p.FirstPending(5))

	assert.Equal(t, []string{"db-6", "db-5"}, UpdatedPods("db", 3, 4, 1))
	assert.Empty(t, UpdatedPods("db", 3, 0, 3))
}
