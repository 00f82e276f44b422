package expandpvc

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/kubectl-sts/kubectl-sts/pkg/expand"
)

// A run killed after its last change, before it closed the record, leaves
// a resumed plan with nothing else to do: the question says what is left.
func TestConfirmQuestionOfAResumedPlanWithNothingLeft(t *testing.T) {
	plan := &expand.Plan{StatefulSet: "db", Size: "2Gi", Resumed: true}
	assert.True(t, plan.Changes(), "the record is still to be closed")
	assert.Equal(t, "Close the record of the interrupted expansion of statefulset db, whose work is done?", confirmQuestion(plan))
}
