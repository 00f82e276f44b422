package testbed_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubectl-sts/kubectl-sts/test/testbed"
)

// A missing old-minor test bed fails loudly, naming how to build it.
func TestMissingCompatBinariesSayHowToBuildThem(t *testing.T) {
	t.Setenv(testbed.EnvCompatBinDir, t.TempDir())
	_, err := testbed.BinDirOf(testbed.Compat)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "binaries etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok, kwokctl missing")
	assert.Contains(t, err.Error(), "run `make testbed-compat` (hack/testbed/build.sh --compat;")
	assert.Contains(t, err.Error(), "or unset $"+testbed.EnvCompatBinDir)
}

func TestVersionFromEnv(t *testing.T) {
	for env, want := range map[string]testbed.Version{"": testbed.Current, "current": testbed.Current, "compat": testbed.Compat} {
		t.Setenv(testbed.EnvVersion, env)
		got, err := testbed.VersionFromEnv()
		require.NoError(t, err, env)
		assert.Equal(t, want, got, env)
	}
	t.Setenv(testbed.EnvVersion, "1.32")
	_, err := testbed.VersionFromEnv()
	assert.EqualError(t, err, `testbed: $KUBECTL_STS_TESTBED_VERSION is "1.32": use current or compat`)
}
