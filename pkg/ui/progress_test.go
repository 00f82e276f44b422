package ui

import (
	"bytes"
	"encoding/json"
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

func TestProgressLiveClearsFooterBeforeLines(t *testing.T) {
	var out bytes.Buffer
	clock := t0
	p := NewProgressPrinter(&out, NewTheme(false), ProgressLive, func() time.Time { return clock })
	p.Emit(progress.Event{Time: t0, Step: 1, Steps: 2, Message: "first"})
	clock = clock.Add(65 * time.Second)
	p.Emit(progress.Event{Time: t0, Step: 2, Steps: 2, Message: "second"})
	p.Stop()
	s := out.String()
	assert.Contains(t, s, "step 1/2 · 0s elapsed")
	assert.Contains(t, s, "\r\x1b[K15:04:05 step 2/2 second\n")
	assert.Contains(t, s, "step 2/2 · 1m5s elapsed")
	assert.True(t, strings.HasSuffix(s, "\r\x1b[K"), "Stop leaves a clean line")
}
