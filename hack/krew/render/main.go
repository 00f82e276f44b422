// Command render writes krew-manifest.yaml from the archives in dist/.
//
//	go run ./hack/krew/render -version v0.1.0 -dist dist -out krew-manifest.yaml
package main

import (
	"flag"
	"fmt"
	"os"

	"sigs.k8s.io/yaml"

	"github.com/kubectl-sts/kubectl-sts/hack/krew"
)

func main() {
	version := flag.String("version", "", "release version, e.g. v0.1.0")
	dist := flag.String("dist", "dist", "directory holding the release archives")
	out := flag.String("out", "krew-manifest.yaml", "where to write the manifest")
	flag.Parse()
	if err := run(*version, *dist, *out); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run(version, dist, out string) error {
	m, err := krew.Render(version, dist)
	if err != nil {
		return err
	}
	if err := krew.Validate(m, dist); err != nil {
		return fmt.Errorf("rendered manifest is invalid: %w", err)
	}
	b, err := yaml.Marshal(m)
	if err != nil {
		return err
	}
	header := "# Rendered by `make krew-manifest` from the release archives; do not edit by hand.\n"
	return os.WriteFile(out, append([]byte(header), b...), 0o644)
}
