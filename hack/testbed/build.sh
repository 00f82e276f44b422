#!/usr/bin/env bash
# Builds the test bed binaries once into a cache keyed by versions.env and
# prints the bin dir as the last line of stdout.
#
#   hack/testbed/build.sh                  build if needed, print the bin dir
#   hack/testbed/build.sh --print-bin-dir  print the bin dir, build nothing
#   hack/testbed/build.sh --compat [--print-bin-dir]
#                                          the same for the old minor of the
#                                          compatibility suite (KUBERNETES_COMPAT_VERSION):
#                                          its kube-apiserver, kube-controller-manager and
#                                          kube-scheduler, beside the current minor's
#                                          kubectl, etcd, etcdctl, kwok and kwokctl
#
# Cache: ${KUBECTL_STS_TESTBED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-sts/testbed}
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "${here}/versions.env"

cache_root="${KUBECTL_STS_TESTBED_CACHE:-${XDG_CACHE_HOME:-${HOME}/.cache}/kubectl-sts/testbed}"
key="${KUBERNETES_VERSION}-${ETCD_VERSION}-${KWOK_VERSION}"
dest="${cache_root}/${key}"
bin_dir="${dest}/bin"
stamp="${bin_dir}/.complete"
binaries=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok kwokctl)
# Tools the engine tests use, built into the same bin dir when missing, so
# a cache built before they were added is completed, not rebuilt.
extras=(etcdctl)

compat=false
print_only=false
for arg in "$@"; do
	case "${arg}" in
	--compat) compat=true ;;
	--print-bin-dir) print_only=true ;;
	*)
		echo "usage: $0 [--compat] [--print-bin-dir]" >&2
		exit 2
		;;
	esac
done

log() { echo "testbed: $*" >&2; }
die() {
	echo "testbed: ERROR: $*" >&2
	exit 1
}

if ${compat}; then
	compat_key="${KUBERNETES_COMPAT_VERSION}-${ETCD_VERSION}-${KWOK_VERSION}"
	compat_bin="${cache_root}/${compat_key}/bin"
	if ${print_only}; then
		echo "${compat_bin}"
		exit 0
	fi
	compat_complete() {
		[[ -f "${compat_bin}/.complete" ]] || return 1
		local b
		for b in "${binaries[@]}" "${extras[@]}"; do [[ -x "${compat_bin}/${b}" ]] || return 1; done
	}
	if compat_complete; then
		echo "${compat_bin}"
		exit 0
	fi
	# The shared programs come from the current minor's build.
	current_bin="$("$0" | tail -n 1)"
	grep -Eq "k8s.io/kubernetes ${KUBERNETES_COMPAT_VERSION}( |\$)" "${here}/compat/go.mod" ||
		die "hack/testbed/compat/go.mod does not match KUBERNETES_COMPAT_VERSION in versions.env; run hack/testbed/sync.sh"
	mkdir -p "${cache_root}"
	if command -v flock >/dev/null; then
		exec 9>"${cache_root}/.lock-compat"
		flock 9
	fi
	if compat_complete; then
		echo "${compat_bin}"
		exit 0
	fi
	if command -v flock >/dev/null; then
		rm -rf "${cache_root}/.${compat_key}.tmp."*
	fi
	tmp="$(mktemp -d "${cache_root}/.${compat_key}.tmp.XXXXXX")"
	trap 'rm -rf "${tmp}"' EXIT
	trap 'exit 130' INT TERM
	mkdir -p "${tmp}/bin"
	export GOTOOLCHAIN=local
	export GOFLAGS="-mod=readonly -trimpath -buildvcs=false"
	export CGO_ENABLED=0
	start=$SECONDS
	k8s_ldflags="-s -w -X k8s.io/component-base/version.gitVersion=${KUBERNETES_COMPAT_VERSION} -X k8s.io/client-go/pkg/version.gitVersion=${KUBERNETES_COMPAT_VERSION}"
	# One go build for the three, so the packages they share compile once.
	log "building Kubernetes ${KUBERNETES_COMPAT_VERSION} (kube-apiserver, kube-controller-manager, kube-scheduler) for the compatibility suite; 10-20 minutes on 2 cores"
	(cd "${here}/compat" && go build -p 2 -ldflags "${k8s_ldflags}" -o "${tmp}/bin/" \
		k8s.io/kubernetes/cmd/kube-apiserver \
		k8s.io/kubernetes/cmd/kube-controller-manager \
		k8s.io/kubernetes/cmd/kube-scheduler) ||
		die "building Kubernetes ${KUBERNETES_COMPAT_VERSION} failed (see the go output above)"
	for b in kubectl etcd etcdctl kwok kwokctl; do
		# A hard link where the file system allows it, else a copy: either
		# survives a rebuild of the current minor's cache.
		ln "${current_bin}/${b}" "${tmp}/bin/${b}" 2>/dev/null || cp "${current_bin}/${b}" "${tmp}/bin/${b}"
	done
	got="$("${tmp}/bin/kube-apiserver" --version)"
	[[ "${got}" == "Kubernetes ${KUBERNETES_COMPAT_VERSION}" ]] ||
		die "kube-apiserver reports \"${got}\", not Kubernetes ${KUBERNETES_COMPAT_VERSION}; check the -ldflags in $0"
	printf 'kubernetes=%s\netcd=%s\nkwok=%s\nkubectl=%s\nbuilt=%s\n' \
		"${KUBERNETES_COMPAT_VERSION}" "${ETCD_VERSION}" "${KWOK_VERSION}" "${KUBERNETES_VERSION}" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"${tmp}/bin/.complete"
	rm -rf "${cache_root:?}/${compat_key}"
	mv "${tmp}" "${cache_root}/${compat_key}"
	trap - EXIT
	log "built in $((SECONDS - start))s into ${compat_bin}"
	echo "${compat_bin}"
	exit 0
fi

if ${print_only}; then
	echo "${bin_dir}"
	exit 0
fi

complete() {
	[[ -f "${stamp}" ]] || return 1
	local b
	for b in "${binaries[@]}"; do [[ -x "${bin_dir}/${b}" ]] || return 1; done
}

extras_complete() {
	local b
	for b in "${extras[@]}"; do [[ -x "${bin_dir}/${b}" ]] || return 1; done
}

# build_extras builds the missing extras into $1 (the caller holds the lock).
build_extras() {
	local out="$1"
	if [[ ! -x "${out}/etcdctl" ]]; then
		log "building etcdctl ${ETCD_VERSION}"
		(cd "${here}/etcd" && GOTOOLCHAIN=local GOFLAGS="-mod=readonly -trimpath -buildvcs=false" CGO_ENABLED=0 \
			go build -p 2 -ldflags "-s -w" -o "${out}/.etcdctl.tmp" go.etcd.io/etcd/etcdctl/v3) ||
			die "building etcdctl ${ETCD_VERSION} failed (see the go output above)"
		mv "${out}/.etcdctl.tmp" "${out}/etcdctl"
	fi
}

if complete && extras_complete; then
	echo "${bin_dir}"
	exit 0
fi

# The wrapper modules must match versions.env, or we would cache binaries of
# one version under another version's name.
grep -Eq "k8s.io/kubernetes ${KUBERNETES_VERSION}( |\$)" "${here}/go.mod" &&
	grep -Eq "go.etcd.io/etcd/server/v3 ${ETCD_VERSION}( |\$)" "${here}/etcd/go.mod" ||
	die "hack/testbed/go.mod or hack/testbed/etcd/go.mod do not match versions.env; run hack/testbed/sync.sh"

command -v go >/dev/null || die "go is not on PATH; install Go first"

mkdir -p "${cache_root}"
# One build at a time per cache (two `make test` runs may start together).
if command -v flock >/dev/null; then
	exec 9>"${cache_root}/.lock"
	flock 9
fi
if complete; then
	build_extras "${bin_dir}"
	echo "${bin_dir}"
	exit 0
fi

# Leftovers of builds that were killed (we hold the lock, none is running).
if command -v flock >/dev/null; then
	rm -rf "${cache_root}/.${key}.tmp."*
fi
tmp="$(mktemp -d "${cache_root}/.${key}.tmp.XXXXXX")"
trap 'rm -rf "${tmp}"' EXIT
trap 'exit 130' INT TERM
mkdir -p "${tmp}/bin"

export GOTOOLCHAIN=local
export GOFLAGS="-mod=readonly -trimpath -buildvcs=false"
export CGO_ENABLED=0
start=$SECONDS
k8s_ldflags="-s -w -X k8s.io/component-base/version.gitVersion=${KUBERNETES_VERSION} -X k8s.io/client-go/pkg/version.gitVersion=${KUBERNETES_VERSION}"

log "building Kubernetes ${KUBERNETES_VERSION} (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl); the first build takes 10-25 minutes on 2 cores"
(cd "${here}" && go build -p 2 -ldflags "${k8s_ldflags}" -o "${tmp}/bin/" \
	k8s.io/kubernetes/cmd/kube-apiserver \
	k8s.io/kubernetes/cmd/kube-controller-manager \
	k8s.io/kubernetes/cmd/kube-scheduler \
	k8s.io/kubernetes/cmd/kubectl) ||
	die "building Kubernetes ${KUBERNETES_VERSION} failed (see the go output above)"

log "building etcd ${ETCD_VERSION}"
(cd "${here}/etcd" && go build -p 2 -ldflags "-s -w" -o "${tmp}/bin/etcd" go.etcd.io/etcd/server/v3) ||
	die "building etcd ${ETCD_VERSION} failed (see the go output above)"

log "building kwok and kwokctl ${KWOK_VERSION}"
# kwok's go.mod has no local replaces, so `go install pkg@version` works.
kwok_ldflags="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v} -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${KUBERNETES_VERSION#v}"
GOFLAGS="-trimpath -buildvcs=false" GOBIN="${tmp}/bin" go install -p 2 -ldflags "${kwok_ldflags}" \
	"sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}" "sigs.k8s.io/kwok/cmd/kwokctl@${KWOK_VERSION}" ||
	die "building kwok ${KWOK_VERSION} failed (see the go output above)"

build_extras "${tmp}/bin"

for b in "${binaries[@]}" "${extras[@]}"; do
	[[ -x "${tmp}/bin/${b}" ]] || die "build finished but ${b} is missing"
done
# kwokctl picks its flags by the version the binaries report.
got="$("${tmp}/bin/kube-apiserver" --version)"
[[ "${got}" == "Kubernetes ${KUBERNETES_VERSION}" ]] ||
	die "kube-apiserver reports \"${got}\", not Kubernetes ${KUBERNETES_VERSION}; check the -ldflags in $0"
printf 'kubernetes=%s\netcd=%s\nkwok=%s\nbuilt=%s\n' \
	"${KUBERNETES_VERSION}" "${ETCD_VERSION}" "${KWOK_VERSION}" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"${tmp}/bin/.complete"

# Swap the finished build in by rename, so readers never see half a cache.
rm -rf "${dest}"
mv "${tmp}" "${dest}"
trap - EXIT
log "built in $((SECONDS - start))s into ${bin_dir}"
echo "${bin_dir}"
