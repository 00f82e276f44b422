package rollout

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/kubectl-sts/kubectl-sts/pkg/rollout"
)

func TestQuestionNamesTheLeaderRestart(t *testing.T) {
	pv := &rollout.Preview{Leader: &rollout.LeaderPlan{Leader: "zk-1", Step: 2, RestartBefore: 2}}
	assert.Equal(t, "Roll out revision r2 of statefulset ns/zk in 3 steps, restarting the leader zk-1 in place before step 2?",
		withLeaderRestart("Roll out revision r2 of statefulset ns/zk in 3 steps?", pv))
	pv.Leader = &rollout.LeaderPlan{Leader: "zk-0", Step: 3}
	assert.Equal(t, "Roll out?", withLeaderRestart("Roll out?", pv))
}
