package cmd

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	cmdtesting "github.com/kubectl-sts/kubectl-sts/pkg/cmd/testing"
	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
)

func TestHelpSaysKubectlSts(t *testing.T) {
	f := cmdtesting.NewFakeOptions()
	code := f.Run(context.Background(), Run, "--help")
	require.Equal(t, cmdutil.ExitOK, code)
	assert.Contains(t, f.Out.String(), "kubectl sts [command]")
	for _, sub := range []string{"status", "rollout", "scale-down", "expand-pvc", "cleanup-pvcs", "version"} {
		assert.Contains(t, f.Out.String(), "\n  "+sub+" ", "help lists %s", sub)
	}
	for _, flag := range []string{"--kubeconfig", "--context", "--namespace", "--as", "--color", "-v, --v"} {
		assert.Contains(t, f.Out.String(), flag)
	}
}

func TestVersionJSONIncludesServer(t *testing.T) {
	f := cmdtesting.NewFakeOptions()
	code := f.Run(context.Background(), Run, "version", "-o", "json")
	require.Equal(t, cmdutil.ExitOK, code, f.ErrOut.String())
	var got map[string]any
	require.NoError(t, json.Unmarshal(f.Out.Bytes(), &got))
	client := got["clientVersion"].(map[string]any)
	assert.NotEmpty(t, client["version"])
	assert.NotEmpty(t, client["goVersion"])
	assert.Contains(t, got, "serverVersion")
}

func TestBadInputIsUsageError(t *testing.T) {
	cases := map[string][]string{
		"invalid color":        {"--color", "purple", "version", "--client"},
		"unknown flag":         {"version", "--bogus"},
		"invalid output":       {"version", "-o", "xml"},
		"version takes no arg": {"version", "extra"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			f := cmdtesting.NewFakeOptions()
			code := f.Run(context.Background(), Run, args...)
			assert.Equal(t, cmdutil.ExitUsage, code)
			assert.Contains(t, f.ErrOut.String(), "error: ")
			assert.Contains(t, f.ErrOut.String(), "--help' for usage")
			assert.Empty(t, f.Out.String())
		})
	}
}

func TestCancelledContextExitsInterrupted(t *testing.T) {
	f := cmdtesting.NewFakeOptions()
	code := HandleError(f.Options, nil, fmt.Errorf("waiting for pod db-2: %w", context.Canceled))
	assert.Equal(t, cmdutil.ExitInterrupted, code)
	assert.Contains(t, f.ErrOut.String(), "interrupted")
}
