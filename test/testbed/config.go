package testbed

import (
	"embed"
	"fmt"
	"io/fs"
	"net"
	"path/filepath"
	"sort"
	"strings"
)

// The stage files drive the fake kubelet (kwok); the manifests are applied
// when a cluster starts. hack/cluster-up.sh uses the same files through
// this package.
//
//go:embed stages/*.yaml manifests/*.yaml
var files embed.FS

// Stages returns the kwok Stage documents of the test bed, as one
// multi-document YAML stream.
func Stages() (string, error) {
	return joinYAML("stages")
}

func joinYAML(dir string) (string, error) {
	names, err := fs.Glob(files, dir+"/*.yaml")
	if err != nil {
		return "", err
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		data, err := files.ReadFile(n)
		if err != nil {
			return "", err
		}
		b.WriteString("---\n# Source: " + n + "\n")
		b.Write(data)
		b.WriteString("\n")
	}
	return b.String(), nil
}

// ports are the TCP ports of one cluster's components.
type ports struct {
	apiserver, etcd, etcdPeer, controllerManager, scheduler, kwok int
}

// freePorts picks distinct free ports on 127.0.0.1. kwokctl's own choice
// starts from the same number in every process, so two clusters created at
// the same time would collide.
func freePorts() (ports, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	var p [6]int
	for i := range p {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return ports{}, fmt.Errorf("testbed: picking a free port: %w", err)
		}
		ls = append(ls, l)
		p[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports{p[0], p[1], p[2], p[3], p[4], p[5]}, nil
}

// kwokctlConfig renders the kwokctl configuration for one cluster,
// followed by the stages.
func kwokctlConfig(binDir string, p ports) (string, error) {
	stages, err := Stages()
	if err != nil {
		return "", err
	}
	bin := func(name string) string { return filepath.Join(binDir, name) }
	return fmt.Sprintf(`apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  runtime: binary
  bindAddress: 127.0.0.1
  kubeApiserverPort: %d
  etcdPort: %d
  etcdPeerPort: %d
  kubeControllerManagerPort: %d
  kubeSchedulerPort: %d
  kwokControllerPort: %d
  etcdBinary: %q
  kubeApiserverBinary: %q
  kubeControllerManagerBinary: %q
  kubeSchedulerBinary: %q
  kwokControllerBinary: %q
  kubectlBinary: %q
  kubeAuthorization: true
  kubeAdmission: true
  disableQPSLimits: true
  # Exec mappings are created at run time (Cluster.MapExec), so kwok
  # watches them as custom resources. Stages come from this file.
  enableCRDs:
  - Exec
  - ClusterExec
componentsPatches:
- name: kube-controller-manager
  extraArgs:
  # The stages play the external resizer. The in-tree expander would only
  # log "waiting for an external controller" for these hostPath volumes,
  # but keep it out so nothing else ever touches a claim's resize status.
  - key: controllers
    value: "*,-persistentvolume-expander-controller"
- name: kwok-controller
  extraArgs:
  # kwokctl's binary runtime leaves the node IP empty: pods would get no
  # host IP and kube-apiserver could not reach kwok's kubelet API for exec.
  - key: node-ip
    value: 127.0.0.1
%s`, p.apiserver, p.etcd, p.etcdPeer, p.controllerManager, p.scheduler, p.kwok,
		bin("etcd"), bin("kube-apiserver"), bin("kube-controller-manager"), bin("kube-scheduler"),
		bin("kwok"), bin("kubectl"), stages), nil
}
