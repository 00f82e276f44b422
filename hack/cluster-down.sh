#!/usr/bin/env bash
# Deletes a cluster started by hack/cluster-up.sh, processes and files.
#
#   hack/cluster-down.sh [NAME]      NAME defaults to kubectl-sts-dev
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
name="${1:-kubectl-sts-dev}"

bin_dir="$("${root}/hack/testbed/build.sh" --print-bin-dir)"
work_dir="$(dirname "$(dirname "${bin_dir}")")/clusters/${name}"

if [[ ! -d "${work_dir}" ]]; then
	echo "no cluster ${name} (nothing in ${work_dir})" >&2
	exit 0
fi
if [[ -x "${bin_dir}/kwokctl" && -d "${work_dir}/kwok/clusters/${name}" ]]; then
	# kwokctl removes the cluster's context from the kubeconfig it is given:
	# give it a file of the cluster's own, never the user's.
	if ! out="$(env -u KUBECONFIG KWOK_WORKDIR="${work_dir}/kwok" \
		"${bin_dir}/kwokctl" --name "${name}" delete cluster --kubeconfig="${work_dir}/unused-kubeconfig.yaml" 2>&1)"; then
		echo "${out}" >&2
		echo "kwokctl could not delete cluster ${name}; its files are in ${work_dir}" >&2
		exit 1
	fi
fi
rm -rf "${work_dir}"
echo "cluster ${name} deleted" >&2
