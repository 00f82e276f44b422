#!/usr/bin/env bash
# The plugin's main jobs against a throwaway local control plane: status,
# a staged rollout, a PVC expansion and a safe scale-down.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
plugin="${root}/bin/kubectl-sts"
name="kubectl-sts-demo-$$"

[[ -x "${plugin}" ]] || { echo "build the plugin first: make build" >&2; exit 1; }
bin_dir="$("${root}/hack/testbed/build.sh" | tail -n 1)"

cleanup() { "${root}/hack/cluster-down.sh" "${name}" >/dev/null 2>&1 || true; }
trap cleanup EXIT

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "starting a local control plane (etcd, kube-apiserver, controller-manager, scheduler, KWOK nodes)"
eval "$("${root}/hack/cluster-up.sh" "${name}")"
export PATH="${root}/bin:${bin_dir}:${PATH}"

step "creating a 5-replica StatefulSet with a volumeClaimTemplate"
run kubectl apply -f "${root}/hack/demo/statefulset.yaml"
kubectl rollout status statefulset/kv --timeout=120s

step "status"
run kubectl sts status kv || true

step "staged rollout of a new image: canary 1, then half, then all"
run kubectl sts rollout kv --staged --image kv=example.com/kv-store:1.1 --steps 1,50%,100% --yes

step "a broken image: the canary never becomes Ready, so the rollout rolls back by itself (exit code 4)"
run kubectl sts rollout kv --staged --image kv=example.com/kv-store:broken --steps 1,100% --step-timeout 15s --yes || echo "exit code $?"

step "growing every volume from 1Gi to 2Gi, one ordinal at a time"
# The simulated storage grows file systems only when the pod restarts; do
# not wait the default two minutes for an online resize that cannot happen.
run kubectl sts expand-pvc kv --size 2Gi --online-resize-wait 5s --yes

step "scaling down to 3 replicas and deleting the removed members' PVCs"
run kubectl sts scale-down kv --replicas 3 --pvc delete --yes

step "status after the day-2 work"
run kubectl sts status kv -o wide || true

step "what kubectl describe shows"
kubectl describe statefulset kv | sed -n '/^Events:/,$p'
