package util

import (
	"context"
	"errors"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recordingCommand notes each step RunE calls and fails the step named in
// fail.
type recordingCommand struct {
	calls []string
	fail  map[string]error
	args  []string
	ctx   context.Context
}

func (c *recordingCommand) step(name string) error {
	c.calls = append(c.calls, name)
	return c.fail[name]
}

func (c *recordingCommand) Complete(_ *cobra.Command, args []string) error {
	c.args = args
	return c.step("complete")
}

func (c *recordingCommand) Validate() error { return c.step("validate") }

func (c *recordingCommand) Run(ctx context.Context) error {
	c.ctx = ctx
	return c.step("run")
}

type ctxKey struct{}

func TestRunECompletesValidatesThenRunsWithTheCommandsContext(t *testing.T) {
	c := &recordingCommand{}
	cmd := &cobra.Command{Use: "x"}
	ctx := context.WithValue(context.Background(), ctxKey{}, "root")
	cmd.SetContext(ctx)

	require.NoError(t, RunE(c)(cmd, []string{"db"}))
	assert.Equal(t, []string{"complete", "validate", "run"}, c.calls)
	assert.Equal(t, []string{"db"}, c.args)
	require.NotNil(t, c.ctx)
	assert.Equal(t, "root", c.ctx.Value(ctxKey{}), "Run gets the command's context, so Ctrl-C reaches it")
}

func TestRunEStopsAtTheFirstError(t *testing.T) {
	for _, tc := range []struct {
		fail  string
		calls []string
	}{
		{"complete", []string{"complete"}},
		{"validate", []string{"complete", "validate"}},
		{"run", []string{"complete", "validate", "run"}},
	} {
		t.Run(tc.fail, func(t *testing.T) {
			want := WithExitCode(ExitNeedsAttention, errors.New(tc.fail+" failed"))
			c := &recordingCommand{fail: map[string]error{tc.fail: want}}
			cmd := &cobra.Command{Use: "x"}
			cmd.SetContext(context.Background())

			err := RunE(c)(cmd, nil)
			assert.Same(t, want, err, "the error comes back as it was, with its exit code")
			assert.Equal(t, tc.calls, c.calls)
		})
	}
}
