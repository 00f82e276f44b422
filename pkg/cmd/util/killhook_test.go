package util

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

func TestKillHookFiresAfterTheKthProgressEvent(t *testing.T) {
	var out bytes.Buffer
	kills := 0
	w := &killAfter{out: &out, left: 2, kill: func() { kills++ }}
	_, _ = w.Write([]byte(`{"apiVersion":"kubectl-sts.io/v1alpha1","kind":"ExpandPVCPlan","plan":{}}` + "\n"))
	_, _ = w.Write([]byte(`{"time":"2026-01-01T00:00:00Z","operation":"expand-pvc","kind":"expand-started"}` + "\n" + `{"operation":"expand-pvc",`))
	assert.Zero(t, kills, "a plan document is not an event; one event so far")
	_, _ = w.Write([]byte(`"kind":"step-started"}` + "\n"))
	assert.Equal(t, 1, kills, "the second event, split over two writes, fires the hook")
	_, _ = w.Write([]byte(`{"operation":"expand-pvc","kind":"pvc-patched"}` + "\n"))
	assert.Equal(t, 1, kills, "once only")
	assert.Contains(t, out.String(), "step-started", "the event is written before the kill")
}

func TestKillHookOfAKindCountsOnlyThatKind(t *testing.T) {
	var out bytes.Buffer
	kills := 0
	got := WithKillHook(genericiooptions.IOStreams{Out: &out}, func(string) string { return "pod-ready:2" })
	w := got.Out.(*killAfter)
	w.kill = func() { kills++ }
	for _, kind := range []string{"pod-ready", "waiting", "waiting", "pvc-resized"} {
		_, _ = w.Write([]byte(`{"operation":"expand-pvc","kind":"` + kind + `"}` + "\n"))
	}
	assert.Zero(t, kills)
	_, _ = w.Write([]byte(`{"operation":"expand-pvc","kind":"pod-ready"}` + "\n"))
	assert.Equal(t, 1, kills)
}

func TestKillHookIsOffUnlessSet(t *testing.T) {
	var out bytes.Buffer
	streams := genericiooptions.IOStreams{Out: &out}
	for _, v := range []string{"", "0", "-1", "x", ":2", "pod-ready:0", "pod-ready:x"} {
		got := WithKillHook(streams, func(string) string { return v })
		assert.Same(t, &out, got.Out, "value %q", v)
	}
	got := WithKillHook(streams, func(string) string { return "3" })
	assert.IsType(t, &killAfter{}, got.Out)
}
