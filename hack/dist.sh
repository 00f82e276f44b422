#!/usr/bin/env bash
# Builds the release archives into dist/: one static, reproducible binary
# per platform, packed with LICENSE (and the kubectl completion helper on
# Unix), plus SHA256SUMS.
#
#   hack/dist.sh VERSION COMMIT
set -euo pipefail

version="${1:?usage: hack/dist.sh VERSION COMMIT}"
commit="${2:-}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dist="${root}/dist"
platforms=(linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64)
ldflags="-s -w -buildid= -X github.com/kubectl-sts/kubectl-sts/pkg/version.version=${version} -X github.com/kubectl-sts/kubectl-sts/pkg/version.commit=${commit}"

rm -rf "${dist}"
mkdir -p "${dist}"
cd "${root}"
for p in "${platforms[@]}"; do
	os="${p%/*}" arch="${p#*/}"
	name="kubectl-sts_${version}_${os}_${arch}"
	stage="$(mktemp -d)"
	exe="kubectl-sts"
	[[ "${os}" == windows ]] && exe="kubectl-sts.exe"
	echo "building ${name}" >&2
	CGO_ENABLED=0 GOOS="${os}" GOARCH="${arch}" go build -trimpath -buildvcs=false -ldflags "${ldflags}" -o "${stage}/${exe}" ./cmd/kubectl-sts
	cp LICENSE "${stage}/LICENSE"
	files=("${exe}" LICENSE)
	if [[ "${os}" != windows ]]; then
		cp hack/krew/kubectl_complete-sts "${stage}/kubectl_complete-sts"
		files+=(kubectl_complete-sts)
	fi
	# Fixed order, owner and time, and no gzip timestamp: the same source
	# gives the same bytes.
	tar --sort=name --owner=0 --group=0 --numeric-owner --mtime='2000-01-01 00:00:00Z' \
		--mode='u+rwX,go+rX,go-w' -C "${stage}" -cf - "${files[@]}" | gzip -n -9 >"${dist}/${name}.tar.gz"
	rm -rf "${stage}"
done
(cd "${dist}" && sha256sum ./*.tar.gz | sed 's# \./# #' >SHA256SUMS)
echo "${dist}"
