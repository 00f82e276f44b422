#!/usr/bin/env bash
# Starts a local test bed cluster (see docs/testbed.md) that keeps running
# until hack/cluster-down.sh, and prints the line that points kubectl at it.
#
#   hack/cluster-up.sh [NAME]        NAME defaults to kubectl-sts-dev
#   NODES=5 hack/cluster-up.sh       number of fake nodes (default 3)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
name="${1:-kubectl-sts-dev}"

# Builds the binaries on first use (about 12 minutes), then takes a second.
bin_dir="$("${root}/hack/testbed/build.sh" | tail -n 1)"
# The cluster's files live next to the binaries' cache: <cache>/clusters/NAME.
work_dir="$(dirname "$(dirname "${bin_dir}")")/clusters/${name}"

kubeconfig="$(cd "${root}" && KUBECTL_STS_TESTBED_BIN="${bin_dir}" \
	go run ./test/testbed/cmd/testbed-cluster -name "${name}" -workdir "${work_dir}" -nodes "${NODES:-3}" | tail -n 1)"

echo "cluster ${name} is up; its files are in ${work_dir}" >&2
echo "kubectl: ${bin_dir}/kubectl; delete the cluster with: hack/cluster-down.sh ${name}" >&2
echo "export KUBECONFIG=${kubeconfig}"
