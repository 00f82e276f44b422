// Package krew renders and checks the krew plugin manifest of kubectl-sts
// from the release archives, so the manifest is never edited by hand.
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
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Platforms are the os/arch pairs a release ships.
var Platforms = []string{"darwin/amd64", "darwin/arm64", "linux/amd64", "linux/arm64", "windows/amd64", "windows/arm64"}

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
	Files    []FileOp `json:"files"`
	Bin      string   `json:"bin"`
}

// Selector picks the platform by os and arch labels.
type Selector struct {
	MatchLabels map[string]string `json:"matchLabels"`
}

// FileOp copies files from the archive into the plugin's directory.
type FileOp struct {
	From string `json:"from"`
	To   string `json:"to"`
}

const (
	repo     = "https://github.com/kubectl-sts/kubectl-sts"
	shortDoc = "Day-2 operations for StatefulSets: staged rollouts, safe scale-down, PVC expansion"
	longDoc  = `kubectl sts wraps the imperative day-2 workflows of StatefulSets that run
databases and other stateful systems:

  kubectl sts status NAME                 Kubernetes state plus the database's view
  kubectl sts rollout NAME --staged       partition rollout with health gates and rollback
  kubectl sts scale-down NAME --replicas  scale down, drop replication slots, clean up PVCs
  kubectl sts expand-pvc NAME --size      grow PVCs one ordinal at a time, fix the template

Every destructive step has a dry run and a confirmation, and operations keep
their progress in the cluster so an interrupted run can be resumed.`
	caveats = `The plugin uses your kubeconfig credentials. Besides reading StatefulSets,
pods, PVCs, ControllerRevisions and StorageClasses, the workflows need:
  rollout:    patch/update statefulsets, delete pods, create events, configmaps
  scale-down: patch statefulsets, delete PVCs, pods/exec (engines), configmaps
  expand-pvc: patch PVCs, delete pods, delete/create statefulsets, configmaps
A least-privilege Role per command is in docs/rbac.yaml of the project.`
)

// ArchiveName is the file name of a platform's archive.
func ArchiveName(version, platform string) string {
	os, arch, _ := strings.Cut(platform, "/")
	return fmt.Sprintf("kubectl-sts_%s_%s_%s.tar.gz", version, os, arch)
}

// Render builds the manifest for version from the archives in dist.
func Render(version, dist string) (*Manifest, error) {
	m := &Manifest{
		APIVersion: "krew.googlecontainertools.github.com/v1alpha2",
		Kind:       "Plugin",
		Metadata:   Metadata{Name: "sts"},
		Spec: Spec{
			Version:          version,
			Homepage:         repo,
			ShortDescription: shortDoc,
			Description:      longDoc,
			Caveats:          caveats,
		},
	}
	for _, p := range Platforms {
		name := ArchiveName(version, p)
		sum, err := fileSHA256(filepath.Join(dist, name))
		if err != nil {
			return nil, fmt.Errorf("archive for %s: %w (run make dist first)", p, err)
		}
		os, arch, _ := strings.Cut(p, "/")
		bin, files := "kubectl-sts", []FileOp{{From: "kubectl-sts", To: "."}, {From: "LICENSE", To: "."}, {From: "kubectl_complete-sts", To: "."}}
		if os == "windows" {
			bin, files = "kubectl-sts.exe", []FileOp{{From: "kubectl-sts.exe", To: "."}, {From: "LICENSE", To: "."}}
		}
		m.Spec.Platforms = append(m.Spec.Platforms, Platform{
			Selector: Selector{MatchLabels: map[string]string{"os": os, "arch": arch}},
			URI:      fmt.Sprintf("%s/releases/download/%s/%s", repo, version, name),
			Sha256:   sum,
			Files:    files,
			Bin:      bin,
		})
	}
	return m, nil
}

// semver is krew's version rule: a leading v and a semantic version.
var semver = regexp.MustCompile(`^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

// Validate checks m the way krew does before installing, and against the
// archives in dist when dist is not empty: each archive exists, its
// sha256 matches, and every file and the bin are inside it.
func Validate(m *Manifest, dist string) error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if m.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || m.Kind != "Plugin" {
		fail("apiVersion/kind must be krew.googlecontainertools.github.com/v1alpha2 Plugin, got %s %s", m.APIVersion, m.Kind)
	}
	if m.Metadata.Name != "sts" {
		fail("metadata.name must be sts, got %q", m.Metadata.Name)
	}
	if !semver.MatchString(m.Spec.Version) {
		fail("spec.version %q is not a semantic version with a leading v", m.Spec.Version)
	}
	if m.Spec.ShortDescription == "" || strings.Contains(m.Spec.ShortDescription, "\n") {
		fail("shortDescription must be one non-empty line")
	}
	if m.Spec.Homepage == "" || m.Spec.Description == "" {
		fail("homepage and description are required")
	}
	if len(m.Spec.Platforms) == 0 {
		fail("no platforms")
	}
	seen := map[string]bool{}
	for i, p := range m.Spec.Platforms {
		key := p.Selector.MatchLabels["os"] + "/" + p.Selector.MatchLabels["arch"]
		if p.Selector.MatchLabels["os"] == "" || p.Selector.MatchLabels["arch"] == "" {
			fail("platform %d: selector needs os and arch", i)
		}
		if seen[key] {
			fail("platform %d: selector %s overlaps another platform", i, key)
		}
		seen[key] = true
		if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(p.Sha256) {
			fail("platform %s: sha256 %q is not a hex sha256", key, p.Sha256)
		}
		if !strings.HasPrefix(p.URI, "https://") || !strings.HasSuffix(p.URI, ".tar.gz") {
			fail("platform %s: uri %q must be an https .tar.gz", key, p.URI)
		}
		if p.Bin == "" || len(p.Files) == 0 {
			fail("platform %s: bin and files are required", key)
		}
		hasLicense := false
		for _, f := range p.Files {
			hasLicense = hasLicense || f.From == "LICENSE"
		}
		if !hasLicense {
			fail("platform %s: LICENSE is not installed", key)
		}
		if dist == "" {
			continue
		}
		archive := filepath.Join(dist, filepath.Base(p.URI))
		sum, err := fileSHA256(archive)
		if err != nil {
			fail("platform %s: %v", key, err)
			continue
		}
		if sum != p.Sha256 {
			fail("platform %s: sha256 of %s is %s, manifest says %s", key, filepath.Base(archive), sum, p.Sha256)
		}
		names, err := ArchiveFiles(archive)
		if err != nil {
			fail("platform %s: %v", key, err)
			continue
		}
		for _, f := range p.Files {
			if !names[f.From] {
				fail("platform %s: file %q is not in %s", key, f.From, filepath.Base(archive))
			}
		}
		if !names[p.Bin] {
			fail("platform %s: bin %q is not in %s", key, p.Bin, filepath.Base(archive))
		}
	}
	return errors.Join(errs...)
}

// ArchiveFiles lists the regular files in a .tar.gz.
func ArchiveFiles(path string) (map[string]bool, error) {
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
	names := map[string]bool{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if h.Typeflag == tar.TypeReg {
			names[h.Name] = true
		}
	}
}

// SortedKeys returns the keys of m in order.
func SortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func fileSHA256(path string) (string, error) {
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
