// Package krew reads the krew plugin manifests and release archives that
// GoReleaser builds (make dist), so tests can check them the way krew and
// krew-index reviewers do.
package krew

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"sigs.k8s.io/yaml"
)

// EnvToolsDir names the environment variable that points at the directory
// holding krew's client (kubectl-krew) and validate-krew-manifest; make
// test installs them and sets it.
const EnvToolsDir = "KUBECTL_STS_KREW_DIR"

// Manifest is krew's Plugin object (krew.googlecontainertools.github.com/v1alpha2).
type Manifest struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Metadata   Metadata `json:"metadata"`
	Spec       Spec     `json:"spec"`
}

// Metadata names the plugin.
type Metadata struct {
	Name string `json:"name"`
}

// Spec is the plugin's description and platforms.
type Spec struct {
	Version          string     `json:"version"`
	Homepage         string     `json:"homepage"`
	ShortDescription string     `json:"shortDescription"`
	Description      string     `json:"description"`
	Caveats          string     `json:"caveats"`
	Platforms        []Platform `json:"platforms"`
}

// Platform is one downloadable archive.
type Platform struct {
	Selector Selector `json:"selector"`
	URI      string   `json:"uri"`
	Sha256   string   `json:"sha256"`
	Files    []FileOp `json:"files,omitempty"`
	Bin      string   `json:"bin"`
}

// Selector picks the platform by os and arch labels.
type Selector struct {
	MatchLabels map[string]string `json:"matchLabels"`
}

// FileOp copies files from the archive into the plugin's directory; krew
// copies everything when a platform lists none.
type FileOp struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// OSArch is the platform's selector as "os/arch".
func (p Platform) OSArch() string {
	return p.Selector.MatchLabels["os"] + "/" + p.Selector.MatchLabels["arch"]
}

// Parse reads a manifest strictly: an unknown field is an error, as in krew.
func Parse(b []byte) (*Manifest, error) {
	var m Manifest
	if err := yaml.UnmarshalStrict(b, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// Load reads the manifest at path.
func Load(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Entry is one regular file in an archive.
type Entry struct {
	Mode    int64
	UID     int
	GID     int
	ModTime int64 // Unix seconds
}

// ArchiveFiles lists the regular files in a .tar.gz by name.
func ArchiveFiles(path string) (map[string]Entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	tr := tar.NewReader(gz)
	files := map[string]Entry{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if h.Typeflag == tar.TypeReg {
			files[h.Name] = Entry{Mode: h.Mode, UID: h.Uid, GID: h.Gid, ModTime: h.ModTime.Unix()}
		}
	}
}

// FileSHA256 is the hex sha256 of the file at path.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
