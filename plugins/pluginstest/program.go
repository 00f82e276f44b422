package pluginstest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

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
