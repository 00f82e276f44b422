package util

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

func TestExitErrorCarriesItsCodeAndCause(t *testing.T) {
	cause := errors.New("gate failed")
	err := fmt.Errorf("rollout: %w", WithExitCode(ExitRolledBack, cause))
	var ee *ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, ExitRolledBack, ee.Code)
	assert.ErrorIs(t, err, cause)
	assert.Equal(t, "rollout: gate failed", err.Error())
	assert.Equal(t, "exit code 3", WithExitCode(ExitDegraded, nil).Error(), "nothing more to say")
}

func TestUsageErrorIsRecognisedThroughWrapping(t *testing.T) {
	err := UsageErrorf("--steps %q: want a list", "x")
	assert.True(t, IsUsage(err))
	assert.True(t, IsUsage(fmt.Errorf("validate: %w", err)))
	assert.Equal(t, `--steps "x": want a list`, err.Error())
	assert.False(t, IsUsage(errors.New("--steps")))
	assert.False(t, IsUsage(nil))
}

func command(path string) *cobra.Command {
	root := &cobra.Command{Use: "kubectl-sts"}
	sub := &cobra.Command{Use: path}
	root.AddCommand(sub)
	return sub
}

func TestExactlyOneName(t *testing.T) {
	cmd := command("status")
	assert.NoError(t, ExactlyOneName(cmd, []string{"db"}))

	err := ExactlyOneName(cmd, nil)
	assert.True(t, IsUsage(err))
	assert.Equal(t, "kubectl-sts status needs the name of a StatefulSet (list them with: kubectl get sts)", err.Error())

	err = ExactlyOneName(cmd, []string{"a", "b"})
	assert.True(t, IsUsage(err))
	assert.Equal(t, `kubectl-sts status takes one StatefulSet name, got 2: ["a" "b"]`, err.Error())
}

func TestNoArgs(t *testing.T) {
	cmd := command("version")
	assert.NoError(t, NoArgs(cmd, nil))
	err := NoArgs(cmd, []string{"x"})
	assert.True(t, IsUsage(err))
	assert.Equal(t, `kubectl-sts version takes no arguments, got ["x"]`, err.Error())
}

func TestNotImplementedSaysSoAndFails(t *testing.T) {
	err := NotImplemented(command("rollout pause"))
	var ee *ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, ExitFailed, ee.Code)
	assert.Equal(t, "kubectl-sts rollout is not implemented yet in this version", err.Error())
	assert.False(t, IsUsage(err))
}

func confirmOptions(in string, terminal bool) (*Options, *bytes.Buffer) {
	streams, stdin, _, errOut := genericiooptions.NewTestIOStreams()
	stdin.WriteString(in)
	o := NewOptions(streams)
	o.StdinIsTerminal = func() bool { return terminal }
	return o, errOut
}

func TestConfirm(t *testing.T) {
	const q = "Delete pvc data-db-2?"
	for _, tc := range []struct {
		name     string
		yes      bool
		terminal bool
		answer   string
		want     string // "" when approved
		usage    bool
		asked    bool
	}{
		{name: "--yes skips the question", yes: true},
		{name: "y", terminal: true, answer: "y\n", asked: true},
		{name: "YES with spaces", terminal: true, answer: "  YES \n", asked: true},
		{name: "answer without newline", terminal: true, answer: "yes", asked: true},
		{name: "n", terminal: true, answer: "n\n", want: "not confirmed; nothing was changed", asked: true},
		{name: "empty is no", terminal: true, answer: "\n", want: "not confirmed; nothing was changed", asked: true},
		{name: "closed input", terminal: true, want: "no answer read: EOF", asked: true},
		{name: "no terminal", answer: "y\n", usage: true,
			want: q + " needs confirmation, and there is no terminal to ask on: re-run with --yes to proceed, or --dry-run to see the plan"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, errOut := confirmOptions(tc.answer, tc.terminal)
			err := o.Confirm(tc.yes, q)
			if tc.want == "" {
				assert.NoError(t, err)
			} else {
				require.Error(t, err)
				assert.Equal(t, tc.want, err.Error())
				assert.Equal(t, tc.usage, IsUsage(err))
			}
			assert.Equal(t, tc.asked, strings.Contains(errOut.String(), q+" [y/N]: "), "prompt on the error stream: %q", errOut.String())
		})
	}
}
