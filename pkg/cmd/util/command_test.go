package util

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubectl-sts/kubectl-sts/plugins"
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

func TestValidateWorkflowFlagsChecksOutputThenTimeoutsThenEngine(t *testing.T) {
	good := func() (*OutputFlags, *TimeoutFlags, *EngineFlags) {
		return NewWorkflowOutputFlags(), &TimeoutFlags{StepTimeout: time.Minute}, NewEngineFlags()
	}
	out, timeout, engine := good()
	require.NoError(t, ValidateWorkflowFlags(out, timeout, engine, plugins.NewRegistry()))

	out, timeout, engine = good()
	out.Format, timeout.Timeout, engine.Timeout = "xml", -time.Second, -time.Second
	err := ValidateWorkflowFlags(out, timeout, engine, nil)
	assert.True(t, IsUsage(err))
	assert.Contains(t, err.Error(), `output format "xml"`)

	out, timeout, engine = good()
	timeout.Timeout, engine.Timeout = -time.Second, -time.Second
	err = ValidateWorkflowFlags(out, timeout, engine, nil)
	assert.True(t, IsUsage(err))
	assert.Equal(t, "--timeout cannot be negative, got -1s (0 means no limit)", err.Error())

	out, timeout, engine = good()
	timeout.StepTimeout = 0
	err = ValidateWorkflowFlags(out, timeout, engine, nil)
	assert.Equal(t, "--step-timeout must be positive, got 0s", err.Error())

	out, timeout, engine = good()
	engine.Timeout = -time.Second
	err = ValidateWorkflowFlags(out, timeout, engine, nil)
	assert.True(t, IsUsage(err))
	assert.Equal(t, "--engine-timeout must not be negative, got -1s", err.Error())

	out, timeout, engine = good()
	engine.Engine = "nosuch"
	err = ValidateWorkflowFlags(out, timeout, engine, nil)
	assert.True(t, IsUsage(err))
	assert.Contains(t, err.Error(), "nosuch")
}

func TestValidateTimeoutChecksTimeoutAlone(t *testing.T) {
	assert.NoError(t, (&TimeoutFlags{}).ValidateTimeout(), "a command continuing a recorded operation has no --step-timeout")
	err := (&TimeoutFlags{Timeout: -time.Second}).ValidateTimeout()
	assert.True(t, IsUsage(err))
	assert.Equal(t, "--timeout cannot be negative, got -1s (0 means no limit)", err.Error())
}
