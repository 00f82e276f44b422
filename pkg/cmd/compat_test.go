package cmd

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/version"
	fakediscovery "k8s.io/client-go/discovery/fake"
	"k8s.io/client-go/kubernetes/fake"

	cmdtesting "github.com/kubectl-sts/kubectl-sts/pkg/cmd/testing"
	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
)

func fakeOnServer(gitVersion string) *cmdtesting.Fake {
	f := cmdtesting.NewFakeOptions()
	f.Client.Kube.(*fake.Clientset).Discovery().(*fakediscovery.FakeDiscovery).FakedServerVersion = &version.Info{GitVersion: gitVersion}
	return f
}

func TestVersionSaysWhetherTheServerIsInsideTheTestedRange(t *testing.T) {
	for gitVersion, want := range map[string]string{
		"v1.32.2":  "Server Version: v1.32.2 (inside the tested range v1.32-v1.37)\n",
		"v1.37.2":  "Server Version: v1.37.2 (inside the tested range v1.32-v1.37)\n",
		"v1.30.14": "Server Version: v1.30.14 (outside the tested range v1.32-v1.37: it should work, but see docs/compatibility.md)\n",
	} {
		f := fakeOnServer(gitVersion)
		require.Equal(t, cmdutil.ExitOK, f.Run(context.Background(), Run, "version"), f.ErrOut.String())
		assert.Contains(t, f.Out.String(), want)
		assert.Empty(t, f.ErrOut.String(), "version reports the range itself, with no warning")

		f = fakeOnServer(gitVersion)
		require.Equal(t, cmdutil.ExitOK, f.Run(context.Background(), Run, "version", "-o", "json"))
		var got struct {
			Server       string `json:"serverVersion"`
			TestedRange  string `json:"testedRange"`
			ServerTested *bool  `json:"serverTested"`
		}
		require.NoError(t, json.Unmarshal(f.Out.Bytes(), &got))
		assert.Equal(t, gitVersion, got.Server)
		assert.Equal(t, "v1.32-v1.37", got.TestedRange)
		require.NotNil(t, got.ServerTested)
		assert.Equal(t, strings.Contains(want, "inside"), *got.ServerTested, gitVersion)
	}
}

func TestEveryCommandWarnsOnceOnAServerOutsideTheTestedRange(t *testing.T) {
	const warning = "Warning: the cluster runs Kubernetes v1.30.14, outside the range kubectl-sts is tested on (v1.32-v1.37)"
	for _, args := range [][]string{
		{"status", "-A"},
		{"status", "db"},
		{"rollout", "db", "--staged", "--dry-run"},
		{"scale-down", "db", "--replicas", "1", "--dry-run"},
		{"expand-pvc", "db", "--size", "2Gi", "--dry-run"},
		{"cleanup-pvcs", "db", "--dry-run"},
	} {
		f := fakeOnServer("v1.30.14")
		code := f.Run(context.Background(), Run, args...)
		assert.Equal(t, 1, strings.Count(f.ErrOut.String(), warning), "%v (exit %d) warns once:\n%s", args, code, f.ErrOut.String())
		if args[1] == "-A" {
			assert.Equal(t, cmdutil.ExitOK, code, "a warning, not a failure: %s", f.ErrOut.String())
		}

		f = fakeOnServer("v1.34.1")
		f.Run(context.Background(), Run, args...)
		assert.NotContains(t, f.ErrOut.String(), "outside the range", args)
	}
}
