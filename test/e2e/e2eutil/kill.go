package e2eutil

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/pkg/progress"
	"github.com/kubectl-sts/kubectl-sts/test/testbed"
)

// KillAt runs the plugin binary bin (see BuildPlugin) as a real process in
// namespace ns of c, with args that ask for -o json, and kills it with
// SIGKILL, which leaves it no chance to release anything, at the first
// progress event at accepts. at sees every event in order. The test fails
// unless the process was killed; reached says what that event means, for
// the message ("verified an ordinal").
func KillAt(t testing.TB, c *testbed.Cluster, bin, ns string, timeout time.Duration, reached string, at func(progress.Event) bool, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--kubeconfig", c.Kubeconfig, "-n", ns}, args...)...)
	cmd.Env = append(os.Environ(), c.Env()...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	killed := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var ev progress.Event
		if json.Unmarshal(sc.Bytes(), &ev) == nil && at(ev) {
			require.NoError(t, cmd.Process.Kill())
			killed = true
			break
		}
	}
	_, _ = io.Copy(io.Discard, stdout)
	_ = cmd.Wait()
	require.True(t, killed, "the run was never killed: it never %s: %s", reached, stderr.String())
}

// ResumeAfterLease checks what a killed run of StatefulSet name left
// behind and what a second run makes of it: the record still says
// Running, with the dead process's lease; a run of args is refused while
// that lease is live, and the same run, once the lease has expired,
// continues the operation and ends with exit code 0. It returns that run.
func ResumeAfterLease(t testing.TB, c *testbed.Cluster, ns, name string, timeout time.Duration, args ...string) Result {
	t.Helper()
	rec, err := journal.New(c.Client, ns, name, "e2e-reader").Load(context.Background())
	require.NoError(t, err)
	require.NotNil(t, rec)
	assert.Equal(t, journal.Running, rec.Phase)
	assert.NotEmpty(t, rec.Holder, "a killed process keeps its lease until it expires")

	RequireLeaseLive(t, rec.Heartbeat, journal.DefaultLeaseDuration)
	r := Run(t, Client(c, ns), timeout, args...)
	require.Equal(t, cmdutil.ExitFailed, r.Code, "a run while the killed process's lease is live is refused: %s", r.Out)
	assert.Contains(t, r.ErrOut, "its lease expires at")

	time.Sleep(time.Until(rec.Heartbeat.Add(journal.DefaultLeaseDuration + time.Second)))
	r = Run(t, Client(c, ns), timeout, args...)
	require.Equal(t, 0, r.Code, r.ErrOut)
	return r
}
