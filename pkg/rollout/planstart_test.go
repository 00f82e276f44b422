package rollout

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-sts/kubectl-sts/pkg/status/statustest"
	"github.com/kubectl-sts/kubectl-sts/plugins"
)

var planNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// startInputs are the StartInputs of a StatefulSet of n pods whose new
// revision is applied and held back by the partition, with the pods of
// updated already on it.
func startInputs(n int, updated ...int) StartInputs {
	f := statustest.New("prod", "db", n, planNow).StartRollout(int32(n-len(updated)), updated...)
	pods := map[string]*corev1.Pod{}
	for _, p := range f.Pods {
		pods[p.Name] = p
	}
	return StartInputs{StatefulSet: f.StatefulSet, Pods: pods, Now: planNow}
}

func withEngine(in StartInputs, healthy bool, err error) StartInputs {
	in.Engine = &fakeEngine{healthy: func() bool { return healthy }}
	in.MembersErr = err
	return in
}

func TestPlanStart(t *testing.T) {
	type check func(t *testing.T, pv *Preview, err error)
	refusedInput := func(want string, input bool) check {
		return func(t *testing.T, pv *Preview, err error) {
			var r *RefusedError
			require.ErrorAs(t, err, &r)
			assert.Equal(t, input, r.Input, "a refusal of the command line is Input")
			assert.Contains(t, err.Error(), want)
			assert.Nil(t, pv)
		}
	}
	cases := []struct {
		name  string
		in    StartInputs
		req   Request
		check check
	}{
		{"pending revision held by the partition", startInputs(3), Request{}, func(t *testing.T, pv *Preview, err error) {
			require.NoError(t, err)
			assert.Equal(t, ModePending, pv.Mode)
			assert.Equal(t, "db-"+statustest.UpdateHash, pv.To)
			assert.Equal(t, 0, pv.Done)
			assert.Equal(t, "20260301T120000.000000000Z", pv.State().ID, "named by the inputs' clock")
			assert.Equal(t, plugins.EngineNone, pv.State().Gates.Engine)
		}},
		{"the controller already updates pods: take over", func() StartInputs {
			in := startInputs(4, 3)
			in.StatefulSet.Spec.UpdateStrategy.RollingUpdate.Partition = new(int32) // lets it update all
			return in
		}(), Request{}, func(t *testing.T, pv *Preview, err error) {
			require.NoError(t, err)
			assert.Equal(t, ModeTakeOver, pv.Mode)
			assert.Equal(t, int32(3), pv.Hold)
		}},
		{"pods already updated from the top are steps done", startInputs(4, 3), Request{Steps: []StepSpec{{Value: 1}, {Value: 4}}}, func(t *testing.T, pv *Preview, err error) {
			require.NoError(t, err)
			assert.Equal(t, 1, pv.Done)
		}},
		{"a change on top of a pending revision", startInputs(3), Request{Change: &Change{Images: map[string]string{"postgres": "postgres:19"}}},
			refusedInput("already has a pending revision", true)},
		{"final partition above the replicas", startInputs(3), Request{FinalPartition: 4}, refusedInput("--final-partition 4 is outside 0..3", true)},
		{"pause after the last step", startInputs(3), Request{Steps: []StepSpec{{Value: 1}, {Value: 3}}, PauseAfter: []int{2}},
			refusedInput("--pause-after 2 is not a step after which the plan continues", true)},
		{"max lag without an engine", startInputs(3), Request{Gates: Gates{MaxLagSeconds: 5}}, refusedInput("--max-lag needs a database engine", true)},
		{"an unknown engine", func() StartInputs {
			in := startInputs(3)
			in.EngineErr = refuseInput("unknown engine %q", "nosuch")
			return in
		}(), Request{}, refusedInput(`unknown engine "nosuch"`, true)},
		{"an unhealthy engine", withEngine(startInputs(3), false, nil), Request{}, refusedInput("fakedb reports the replica set of statefulset db unhealthy before any change", false)},
		{"a database that cannot be read", withEngine(startInputs(3), true, errors.New("connection refused")), Request{},
			refusedInput("cannot read the database: connection refused", false)},
		{"an unhealthy engine with --force", withEngine(startInputs(3), false, nil), Request{Force: true}, func(t *testing.T, pv *Preview, err error) {
			require.NoError(t, err)
			require.NotEmpty(t, pv.Warnings)
			assert.Contains(t, pv.Warnings[len(pv.Warnings)-1], "--force: starting although fakedb reports the replica set unhealthy")
			assert.Equal(t, "fakedb", pv.State().Gates.Engine)
		}},
		{"a consensus engine that lost a voter", func() StartInputs {
			in := startInputs(3)
			in.Engine = quorumEngine{fakeEngine: &fakeEngine{healthy: func() bool { return true }}}
			in.Membership = plugins.Membership{Engine: "fakedb", Voters: []plugins.Voter{
				{Name: "db-0", Pod: "db-0", Ordinal: 0, Healthy: true}, {Name: "db-1", Pod: "db-1", Ordinal: 1}, {Name: "db-2", Pod: "db-2", Ordinal: 2, Healthy: true}}}
			return in
		}(), Request{}, refusedInput("has already lost db-1", false)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pv, err := PlanStart(c.in, c.req)
			c.check(t, pv, err)
		})
	}
}
