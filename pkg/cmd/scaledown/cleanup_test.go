package scaledown_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubectl-sts/kubectl-sts/pkg/cmd/cleanuppvcs"
	sdcmd "github.com/kubectl-sts/kubectl-sts/pkg/cmd/scaledown"
	cmdtesting "github.com/kubectl-sts/kubectl-sts/pkg/cmd/testing"
	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
	"github.com/kubectl-sts/kubectl-sts/plugins"
)

// slotEngine keeps replication slots on db-0: which it lists as leftovers
// and drops is the engine's judgement; the command only shows, asks and
// carries out.
type slotEngine struct {
	recordingEngine
	slots   map[string]bool // name → droppable
	dropped []string
	names   [][]string
	err     error
}

func (e *slotEngine) Leftovers(_ context.Context, _ plugins.Target, o plugins.LeftoverOptions) ([]plugins.Leftover, error) {
	e.names = append(e.names, o.Names)
	if e.err != nil {
		return nil, e.err
	}
	var out []plugins.Leftover
	for _, n := range []string{"db_3", "db_4_logical"} {
		if ok, exists := e.slots[n]; exists {
			l := plugins.Leftover{Kind: plugins.LeftoverSlot, Name: n, On: "db-0", Drop: ok, Reason: "because " + n, RetainedBytes: plugins.Int64(3 << 20)}
			out = append(out, l)
		}
	}
	return out, nil
}

func (e *slotEngine) DropLeftover(_ context.Context, _ plugins.Target, l plugins.Leftover, _ plugins.LeftoverOptions, ev plugins.RemoveOptions) error {
	if !e.slots[l.Name] {
		return fmt.Errorf("asked to drop %s", l.Name)
	}
	delete(e.slots, l.Name)
	e.dropped = append(e.dropped, l.Name)
	ev.Emit(plugins.RemoveEvent{Action: plugins.ActionChanged, Pod: "db-0", Object: "slot " + l.Name, Message: "dropped replication slot " + l.Name + " on db-0"})
	return nil
}

func runCleanup(t *testing.T, f *cmdtesting.Fake, eng plugins.Engine, args ...string) (string, error) {
	t.Helper()
	o := sdcmd.NewOptions(f.Options)
	o.Engines = plugins.NewRegistry(eng)
	c := cleanuppvcs.NewCmd(o)
	c.SetArgs(args)
	c.SetOut(f.Out)
	c.SetErr(f.ErrOut)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := c.ExecuteContext(ctx)
	return f.Out.String(), err
}

func TestCleanupDropsTheSlotsRemovedMembersLeft(t *testing.T) {
	f := cmdtesting.NewFakeOptions(leftover(fixture(3), 4).Objects()...)
	eng := &slotEngine{slots: map[string]bool{"db_3": true, "db_4_logical": false}}

	out, err := runCleanup(t, f, eng, "db", "--engine", "fake", "--dry-run")
	require.NoError(t, err)
	assert.Contains(t, out, "Plan: clean up what removed ordinals left of statefulset db")
	assert.Contains(t, out, "slot db_3 on db-0, retaining 3.0MiB of WAL → drop (because db_3)")
	assert.Contains(t, out, "slot db_4_logical on db-0, retaining 3.0MiB of WAL → left: because db_4_logical")
	assert.Contains(t, out, "pvc data-db-4 1Gi → delete")
	assert.Empty(t, eng.dropped, "a dry run drops nothing")
	assert.Contains(t, pvcNames(t, f.Client.Kube), "data-db-4")

	f.Out.Reset()
	_, err = runCleanup(t, f, eng, "db", "--engine", "fake")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Delete 1 PVCs of statefulset db (data-db-4), and drop 1 replication slot on db-0 (db_3)? needs confirmation")
	assert.Empty(t, eng.dropped, "nothing without confirmation")

	f.Out.Reset()
	out, err = runCleanup(t, f, eng, "db", "--engine", "fake", "--yes", "--slot", "extra_slot")
	require.NoError(t, err)
	assert.Equal(t, []string{"db_3"}, eng.dropped)
	assert.Equal(t, []string{"extra_slot"}, eng.names[len(eng.names)-1], "--slot reaches the engine")
	assert.NotContains(t, pvcNames(t, f.Client.Kube), "data-db-4")
	assert.Contains(t, out, "dropped replication slot db_3 on db-0")
	assert.Contains(t, out, "cleanup of statefulset db done; 1 pvc deleted; 1 replication slot dropped (db_3); left: slot db_4_logical (because db_4_logical)")

	// Nothing left to drop, no claims: nothing to do.
	f.Out.Reset()
	out, err = runCleanup(t, f, eng, "db", "--engine", "fake", "--yes")
	require.NoError(t, err)
	assert.Contains(t, out, "Nothing to do.")
}

func TestCleanupWithPVCKeepDropsSlotsOnly(t *testing.T) {
	f := cmdtesting.NewFakeOptions(leftover(fixture(3), 4).Objects()...)
	eng := &slotEngine{slots: map[string]bool{"db_3": true}}
	out, err := runCleanup(t, f, eng, "db", "--engine", "fake", "--pvc", "keep", "--yes")
	require.NoError(t, err, out)
	assert.Equal(t, []string{"db_3"}, eng.dropped)
	assert.Contains(t, pvcNames(t, f.Client.Kube), "data-db-4", "--pvc keep leaves the claims")
}

func TestCleanupBadInput(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"cleanup", "db", "--slot", "Bad-Name"}, `--slot: "Bad-Name" is not a valid replication slot name`},
		{[]string{"cleanup-pvcs", "db", "--slot", "pg_3"}, "--slot applies to replication slots, which cleanup-pvcs does not touch"},
		{[]string{"cleanup-pvcs", "db", "--engine", "postgres"}, "--engine applies to replication slots"},
		{[]string{"cleanup", "db", "--engine", "none", "--slot", "pg_3"}, "--slot needs an engine that keeps replication slots, but no database engine was detected"},
		{[]string{"cleanup", "db", "--engine", "redis", "--slot", "pg_3"}, "the redis engine keeps no replication slots"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			f := cmdtesting.NewFakeOptions(fixture(3).Objects()...)
			r := runCmd(t, f, c.args...)
			assert.Equal(t, cmdutil.ExitUsage, r.code, r.errOut)
			assert.Contains(t, r.errOut, c.want)
		})
	}
}

// Called by its former name, the command still deletes claims only and
// never asks an engine.
func TestCleanupPVCsAliasHandlesClaimsOnly(t *testing.T) {
	f := cmdtesting.NewFakeOptions(leftover(fixture(3), 4).Objects()...)
	r := runCmd(t, f, "cleanup-pvcs", "db", "--dry-run")
	require.Equal(t, 0, r.code, r.errOut)
	assert.Contains(t, r.out, "delete the PVCs of statefulset db (namespace default) left over from removed ordinals")
	assert.NotContains(t, r.out, "slots")
}

// An engine that cannot say what removed members left refuses the cleanup
// before anything changes; --engine none cleans up the claims alone.
func TestCleanupRefusesWhenTheEngineCannotBeRead(t *testing.T) {
	f := cmdtesting.NewFakeOptions(leftover(fixture(3), 4).Objects()...)
	eng := &slotEngine{err: fmt.Errorf("no member is primary")}
	_, err := runCleanup(t, f, eng, "db", "--engine", "fake", "--yes")
	require.Error(t, err)
	var exit *cmdutil.ExitError
	require.ErrorAs(t, err, &exit)
	assert.Equal(t, cmdutil.ExitFailed, exit.Code)
	assert.Contains(t, err.Error(), "cannot ask the fake engine which replication slots removed members left: no member is primary; fix the database, or pass --engine none to clean up the claims only")
	assert.Contains(t, pvcNames(t, f.Client.Kube), "data-db-4", "nothing was changed")

	f.Out.Reset()
	_, err = runCleanup(t, f, eng, "db", "--engine", "none", "--yes")
	require.NoError(t, err)
	assert.NotContains(t, pvcNames(t, f.Client.Kube), "data-db-4")
}
