package ui

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubectl-sts/kubectl-sts/pkg/progress"
)

var t0 = time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)

func TestProgressPlainLines(t *testing.T) {
	var out bytes.Buffer
	p := NewProgressPrinter(&out, NewTheme(false), ProgressPlain, nil)
	p.Emit(progress.Event{Time: t0, Step: 2, Steps: 3, Object: "pod/db-3", Kind: "pod-ready", Message: "Ready at revision db-7c9f"})
	p.Emit(progress.Event{Time: t0, Level: progress.Failure, Kind: "gate-failed", Message: "pod db-2 not Ready after 5m"})
	assert.Equal(t, "15:04:05 step 2/3 pod/db-3 Ready at revision db-7c9f\n15:04:05 FAILED: pod db-2 not Ready after 5m\n", out.String())
	assert.NotContains(t, out.String(), "\x1b[", "no escape codes without colour")
}

func TestProgressJSONLines(t *testing.T) {
	var out bytes.Buffer
	p := NewProgressPrinter(&out, NewTheme(true), ProgressJSON, nil)
	p.Emit(progress.Event{Time: t0, Operation: "rollout", Kind: "step-started", Level: progress.Info, Message: "partition 4"})
	p.Emit(progress.Event{Time: t0, Operation: "rollout", Kind: "done", Level: progress.Success, Message: "ok"})
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 2)
	var e progress.Event
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &e))
	assert.Equal(t, "step-started", e.Kind)
	assert.Equal(t, "rollout", e.Operation)
}

// rolloutEvents is a 3-pod rollout in 3 steps as the workflow reports it:
// waits repeat while nothing changes, and each step re-announces the pods
// of earlier steps.
func rolloutEvents() []progress.Event {
	at := func(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }
	ev := []progress.Event{
		{Time: at(0), Kind: "started", Message: "rollout of revision db-7d4b9c6f8 in 3 steps"},
	}
	pods := []string{"db-2", "db-1", "db-0"}
	sec := 0
	for i, pod := range pods {
		n := i + 1
		step := func(e progress.Event) progress.Event {
			sec += 5
			e.Time, e.Step, e.Steps = at(sec), n, 3
			return e
		}
		ev = append(ev, step(progress.Event{Kind: "step-started", Total: 1, Object: "statefulset/db", Message: fmt.Sprintf("partition %d: updating %s to revision db-7d4b9c6f8 (%d of 3 pods)", 2-i, pod, n)}))
		for k := 0; k < 2; k++ {
			ev = append(ev, step(progress.Event{Kind: "gate", Level: progress.Info, Object: "statefulset/db", Message: fmt.Sprintf("generation %d not yet seen (latest seen: %d)", 4+i, 3+i)}))
		}
		for _, done := range pods[:i] {
			ev = append(ev, step(progress.Event{Kind: "gate", Level: progress.Success, Object: "pod/" + done, Message: "Ready at revision db-7d4b9c6f8"}))
		}
		for k := 0; k < 3; k++ {
			ev = append(ev, step(progress.Event{Kind: "gate", Level: progress.Info, Object: "pod/" + pod, Message: "not Ready (ContainerCreating)"}))
		}
		ev = append(ev, step(progress.Event{Kind: "gate", Level: progress.Success, Object: "pod/" + pod, Message: "Ready at revision db-7d4b9c6f8"}))
		ev = append(ev, step(progress.Event{Kind: "step-passed", Level: progress.Success, Object: "statefulset/db", Message: fmt.Sprintf("step %d of 3 passed", n)}))
	}
	return append(ev, progress.Event{Time: at(sec + 1), Kind: "done", Level: progress.Success, Object: "statefulset/db", Message: "rolled out revision db-7d4b9c6f8"})
}

func TestProgressPlainGolden(t *testing.T) {
	var out bytes.Buffer
	p := NewProgressPrinter(&out, NewTheme(false), ProgressPlain, nil)
	events := rolloutEvents()
	for _, e := range events {
		p.Emit(e)
	}
	p.Stop()
	golden(t, "progress-plain", out.String())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	seen := map[string]bool{}
	for _, l := range lines {
		assert.False(t, seen[l], "line printed twice: %q", l)
		seen[l] = true
	}
	assert.Less(t, len(lines), len(events), "repeated waits and re-announced pods are collapsed")

	// -v keeps every event.
	out.Reset()
	p = NewProgressPrinter(&out, NewTheme(false), ProgressPlain, nil)
	p.Verbose = true
	for _, e := range events {
		p.Emit(e)
	}
	assert.Len(t, strings.Split(strings.TrimSpace(out.String()), "\n"), len(events))
}

func TestProgressSummaryOfAStoppedRun(t *testing.T) {
	var out bytes.Buffer
	p := NewProgressPrinter(&out, NewTheme(false), ProgressPlain, nil)
	events := rolloutEvents()
	for _, e := range events[:20] {
		p.Emit(e)
	}
	p.Emit(progress.Event{Time: events[19].Time, Kind: "interrupted", Level: progress.Warning, Message: "interrupted at step 3 of 3"})
	p.Stop()
	assert.True(t, strings.HasSuffix(out.String(), "Steps:\n  step 1  pods 1/1  35s  passed\n  step 2  pods 1/1  40s  passed\n  step 3  pods 0/1  5s  not finished\n  in all 1m30s\n"), out.String())
}

func TestProgressLiveShowsWaitsInTheFooterAndStepsInTheSummary(t *testing.T) {
	var out bytes.Buffer
	clock := t0
	p := NewProgressPrinter(&out, NewTheme(false), ProgressLive, func() time.Time { return clock })
	events := rolloutEvents()
	for i, e := range events {
		clock = e.Time
		p.Emit(e)
		if i == 4 {
			// Step 1 waits for db-2: the footer says so.
			clock = clock.Add(65 * time.Second)
			p.Emit(e)
			assert.True(t, strings.HasSuffix(out.String(), "\r\x1b[Kstep 1/3 · pods 0/1 · this step 1m20s · 1m25s elapsed · waiting: pod/db-2 not Ready (ContainerCreating)"), "%q", out.String())
		}
	}
	p.Stop()
	s := out.String()
	assert.NotContains(t, s, "\ngeneration", "waits are not lines on a terminal")
	assert.NotContains(t, s, "ContainerCreating)\n")
	assert.Contains(t, s, "\r\x1b[K15:04:40 step 1/3 pod/db-2 Ready at revision db-7d4b9c6f8\n")
	assert.Contains(t, s, "step 1/3 · pods 1/1 · this step 30s · 35s elapsed\r")
	assert.Contains(t, s, "step 2/3 · pods 0/1 · this step 10s · 55s elapsed · waiting: statefulset/db generation 5 not yet seen (latest seen: 4)\r\x1b[Kstep 2/3 · pods 0/1 · ", "a pod of an earlier step does not count again")
	assert.True(t, strings.HasSuffix(s, "\r\x1b[K"+golden(t, "progress-summary", s[strings.LastIndex(s, "Steps:"):])), "Stop clears the footer, then prints the summary")
}

func golden(t *testing.T, name, got string) string {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	// -update is defined by the package's external tests (status_test.go).
	if f := flag.Lookup("update"); f != nil && f.Value.String() == "true" {
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test -update to create %s", path)
	assert.Equal(t, string(want), got, "output differs from %s (rerun with -update if the change is intended)", path)
	return got
}
