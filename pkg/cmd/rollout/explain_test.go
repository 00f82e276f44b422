package rollout

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"

	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/pkg/rollout"
)

func exitCode(err error) int {
	if err == nil {
		return cmdutil.ExitOK
	}
	if cmdutil.IsUsage(err) {
		return cmdutil.ExitUsage
	}
	var e *cmdutil.ExitError
	if errors.As(err, &e) {
		return e.Code
	}
	return cmdutil.ExitFailed
}

func TestExplainMapsOutcomesToExitCodes(t *testing.T) {
	cases := []struct {
		err  error
		code int
	}{
		{nil, cmdutil.ExitOK},
		{&rollout.RefusedError{Reason: "bad steps", Input: true}, cmdutil.ExitUsage},
		{&rollout.RefusedError{Reason: "OnDelete"}, cmdutil.ExitFailed},
		{fmt.Errorf("wrapped: %w", &rollout.RolledBackError{Step: 1, Steps: 3}), cmdutil.ExitRolledBack},
		{&rollout.NeedsAttentionError{Message: "x"}, cmdutil.ExitNeedsAttention},
		{&rollout.AbortedError{}, cmdutil.ExitNeedsAttention},
		{&rollout.PausedError{Step: 1, Steps: 2, Name: "db"}, cmdutil.ExitPaused},
		{&journal.HeldError{Operation: "rollout", Holder: "h"}, cmdutil.ExitFailed},
		{errors.New("api down"), cmdutil.ExitFailed},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.code, exitCode(explain(tc.err)), "%v", tc.err)
	}
	// Interruptions keep context.Canceled visible for the root command.
	assert.ErrorIs(t, explain(fmt.Errorf("interrupted: %w", context.Canceled)), context.Canceled)
}
