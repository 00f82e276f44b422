// Package pluginstest holds what the engines' unit tests share: a target
// of running pods behind a fake executor, and a fake client program that
// prints how an engine's shell script called it.
package pluginstest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/plugins"
)

// Target returns a target over StatefulSet name in namespace ns, reached
// through ex with a one-second timeout, whose pods are running, named
// pods, each with the one container c.
func Target(ex kube.Executor, name string, c corev1.Container, pods ...string) plugins.Target {
	t := plugins.Target{StatefulSet: &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}}, Exec: ex, Timeout: time.Second}
	for _, p := range pods {
		t.Pods = append(t.Pods, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: p, Namespace: "ns"},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{c}},
			Status:     corev1.PodStatus{Phase: corev1.PodRunning},
		})
	}
	return t
}

// FakeProgram writes a program called name into a fresh directory; it
// prints each of its arguments as arg=VALUE and each variable of vars as
// NAME=VALUE (<unset> when unset), separated by NUL bytes. It returns the
// environment that puts the program first on PATH, with sh.
func FakeProgram(t testing.TB, name string, vars ...string) []string {
	t.Helper()
	dir := t.TempDir()
	var script strings.Builder
	script.WriteString("#!/bin/sh\nfor a in \"$@\"; do printf 'arg=%s\\0' \"$a\"; done\n")
	for _, v := range vars {
		fmt.Fprintf(&script, "printf '%s=%%s\\0' \"${%s-<unset>}\"\n", v, v)
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(script.String()), 0o755))
	sh, err := exec.LookPath("sh")
	require.NoError(t, err)
	return []string{"PATH=" + dir + ":" + filepath.Dir(sh)}
}

// RunScript runs argv in env and returns what the FakeProgram it called
// printed, values by name (arg for the arguments, in order).
func RunScript(t testing.TB, env, argv []string) map[string][]string {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	require.NoError(t, cmd.Run(), errOut.String())
	got := map[string][]string{}
	for _, field := range strings.Split(strings.TrimSuffix(out.String(), "\x00"), "\x00") {
		k, v, _ := strings.Cut(field, "=")
		got[k] = append(got[k], v)
	}
	return got
}

// Testdata returns the file name of the test's testdata directory: client
// output recorded from a real server.
func Testdata(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return string(b)
}

// TestdataJSON returns the JSON object in the file name of the test's
// testdata directory.
func TestdataJSON(t testing.TB, name string) map[string]any {
	t.Helper()
	var doc map[string]any
	require.NoError(t, json.Unmarshal([]byte(Testdata(t, name)), &doc))
	return doc
}

// AssertMatches checks that matches, an engine's Matches, claims every
// image of claimed and none of others.
func AssertMatches(t *testing.T, matches func(image string) bool, claimed, others []string) {
	t.Helper()
	for _, img := range claimed {
		assert.True(t, matches(img), img)
	}
	for _, img := range others {
		assert.False(t, matches(img), img)
	}
}
