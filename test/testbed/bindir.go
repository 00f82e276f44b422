package testbed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// EnvBinDir names the environment variable that points at the directory of
// test bed binaries (what `hack/testbed/build.sh --print-bin-dir` prints).
const EnvBinDir = "KUBECTL_STS_TESTBED_BIN"

// EnvCompatBinDir names the environment variable that points at the
// binaries of the old minor the compatibility suite runs on (what
// `hack/testbed/build.sh --compat --print-bin-dir` prints).
const EnvCompatBinDir = "KUBECTL_STS_TESTBED_COMPAT_BIN"

// Version selects the Kubernetes minor of a test bed cluster. Both are set
// in hack/testbed/versions.env.
type Version string

const (
	// Current is KUBERNETES_VERSION, the minor every e2e test runs on.
	Current Version = ""
	// Compat is KUBERNETES_COMPAT_VERSION, the old minor of the
	// compatibility suite (test/e2e/compat).
	Compat Version = "compat"
)

// EnvVersion names the environment variable that selects the version of
// the clusters Main starts: empty or "current", or "compat".
const EnvVersion = "KUBECTL_STS_TESTBED_VERSION"

// VersionFromEnv reads $KUBECTL_STS_TESTBED_VERSION.
func VersionFromEnv() (Version, error) {
	switch v := os.Getenv(EnvVersion); v {
	case "", "current":
		return Current, nil
	case string(Compat):
		return Compat, nil
	default:
		return Current, fmt.Errorf("testbed: $%s is %q: use current or compat", EnvVersion, v)
	}
}

func (v Version) env() string {
	if v == Compat {
		return EnvCompatBinDir
	}
	return EnvBinDir
}

func (v Version) buildArgs() []string {
	if v == Compat {
		return []string{"--compat"}
	}
	return nil
}

func (v Version) make() string {
	if v == Compat {
		return "make testbed-compat"
	}
	return "make testbed"
}

// Binaries returns the programs the test bed needs in its bin dir.
func Binaries() []string {
	return []string{
		"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
		"kubectl", "kwok", "kwokctl",
	}
}

// BinDir returns the directory holding the test bed binaries: $KUBECTL_STS_TESTBED_BIN
// if set, else the cache directory hack/testbed/build.sh builds into. It fails
// with instructions when the binaries are not there.
func BinDir() (string, error) { return BinDirOf(Current) }

// BinDirOf returns the directory holding the binaries of version v:
// $KUBECTL_STS_TESTBED_BIN (Current) or $KUBECTL_STS_TESTBED_COMPAT_BIN
// (Compat) if set, else the cache directory hack/testbed/build.sh builds
// into. It fails with instructions when the binaries are not there.
func BinDirOf(v Version) (string, error) {
	envName := v.env()
	dir := os.Getenv(envName)
	source := "$" + envName
	if dir == "" {
		script, err := buildScript()
		if err != nil {
			return "", err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		args := append(append([]string{script}, v.buildArgs()...), "--print-bin-dir")
		out, err := exec.CommandContext(ctx, "bash", args...).Output()
		if err != nil {
			return "", fmt.Errorf("testbed: %s failed: %w%s", strings.Join(args, " "), err, stderrOf(err))
		}
		dir = lastLine(string(out))
		source = strings.Join(args, " ")
	}
	var missing []string
	for _, b := range Binaries() {
		if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		hint := ""
		if os.Getenv(envName) != "" {
			hint = fmt.Sprintf(", or unset $%s", envName)
		}
		return "", fmt.Errorf("testbed: binaries %s missing in %s (from %s): run `%s` "+
			"(hack/testbed/build.sh %s; a first build takes 10-25 minutes on 2 cores)%s",
			strings.Join(missing, ", "), dir, source, v.make(), strings.Join(v.buildArgs(), " "), hint)
	}
	return dir, nil
}

// buildScript finds hack/testbed/build.sh by walking up from the working
// directory (go test runs in the package directory).
func buildScript() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("testbed: %w", err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		p := filepath.Join(dir, "hack", "testbed", "build.sh")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("testbed: hack/testbed/build.sh not found above %s; set $%s to the bin dir of a built test bed (`make testbed`)", wd, EnvBinDir)
		}
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return ": " + strings.TrimSpace(string(ee.Stderr))
	}
	return ""
}
