package util

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"

	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// KillAfterEventEnv is the crash-test hook: set to K, a process running
// with -o json kills itself with SIGKILL right after printing its K-th
// progress event, as `kill -9` would at that point; set to KIND:N, after
// its N-th event of that kind (e.g. pod-restarting:2). The tests that
// prove every workflow resumes from any step use it; it is not for users.
const KillAfterEventEnv = "KUBECTL_STS_TEST_KILL_AFTER_EVENT"

// WithKillHook returns streams whose Out kills the process as
// getenv(KillAfterEventEnv) asks; streams unchanged when it is unset or
// not of either form.
func WithKillHook(streams genericiooptions.IOStreams, getenv func(string) string) genericiooptions.IOStreams {
	v := getenv(KillAfterEventEnv)
	kind, count, found := strings.Cut(v, ":")
	if !found {
		kind, count = "", v
	}
	k, err := strconv.Atoi(count)
	if err != nil || k <= 0 || (found && kind == "") {
		return streams
	}
	streams.Out = &killAfter{out: streams.Out, kind: kind, left: k, kill: killSelf}
	return streams
}

// killSelf ends the process the way SIGKILL from outside does: no
// deferred function, no signal handler, no lease release runs.
func killSelf() {
	if p, err := os.FindProcess(os.Getpid()); err == nil {
		_ = p.Kill()
	}
	select {}
}

// killAfter counts the progress events written to out (JSON lines with an
// operation and a kind) and calls kill after the last one is written.
type killAfter struct {
	mu   sync.Mutex
	out  io.Writer
	line []byte
	// kind, when set, counts only events of that kind.
	kind string
	left int
	kill func()
}

func (w *killAfter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.out.Write(p)
	for _, b := range p[:n] {
		if b != '\n' {
			w.line = append(w.line, b)
			continue
		}
		if kind, ok := progressKind(w.line); ok && (w.kind == "" || w.kind == kind) {
			w.left--
			if w.left == 0 {
				if f, ok := w.out.(interface{ Sync() error }); ok {
					_ = f.Sync()
				}
				w.kill()
			}
		}
		w.line = w.line[:0]
	}
	return n, err
}

// progressKind returns the kind of a progress event line; false for any
// other line (plan and result documents carry an apiVersion).
func progressKind(line []byte) (string, bool) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' {
		return "", false
	}
	var ev struct {
		APIVersion string `json:"apiVersion"`
		Operation  string `json:"operation"`
		Kind       string `json:"kind"`
	}
	ok := json.Unmarshal(line, &ev) == nil && ev.APIVersion == "" && ev.Operation != "" && ev.Kind != ""
	return ev.Kind, ok
}
