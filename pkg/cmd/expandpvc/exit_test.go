package expandpvc

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"

	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
	"github.com/kubectl-sts/kubectl-sts/pkg/expand"
)

func code(err error) int {
	var e *cmdutil.ExitError
	if errors.As(err, &e) {
		return e.Code
	}
	if err == nil {
		return 0
	}
	return -1
}

func TestExitError(t *testing.T) {
	for _, tc := range []struct {
		name string
		res  *expand.Result
		err  error
		want int
	}{
		{"done", &expand.Result{Changed: true}, nil, 0},
		{"claims await a restart", &expand.Result{AwaitingRestart: []string{"data-db-0"}}, nil, cmdutil.ExitNeedsAttention},
		{"resize failed", &expand.Result{Changed: true}, &expand.ResizeFailedError{PVC: "data-db-2"}, cmdutil.ExitNeedsAttention},
		{"attention", &expand.Result{Changed: true}, &expand.AttentionError{Err: errors.New("recreated by someone else")}, cmdutil.ExitNeedsAttention},
		{"failed after changes", &expand.Result{Changed: true}, errors.New("timed out"), cmdutil.ExitNeedsAttention},
		{"failed before changes", &expand.Result{}, errors.New("forbidden"), -1},
		{"interrupted", &expand.Result{Changed: true}, fmt.Errorf("interrupted: %w", context.Canceled), -1},
	} {
		err := exitError(tc.res, tc.err)
		assert.Equal(t, tc.want, code(err), tc.name)
		if tc.name == "interrupted" {
			assert.ErrorIs(t, err, context.Canceled, "the root command maps it to 130")
		}
		if tc.name == "claims await a restart" {
			assert.Contains(t, err.Error(), "data-db-0")
		}
	}
}
