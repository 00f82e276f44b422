#!/usr/bin/env bash
# Scale-down by hand, one ordinal at a time from the top: lower the
# replica count by one, wait for the pod to be gone, delete its claim.
#
# usage: scale-down.sh NAMESPACE STATEFULSET CLAIM REPLICAS
set -euo pipefail
ns=$1 sts=$2 claim=$3 to=$4
replicas=$(kubectl get statefulset "$sts" -n "$ns" -o jsonpath='{.spec.replicas}')
for ((i = replicas - 1; i >= to; i--)); do
	kubectl scale statefulset "$sts" -n "$ns" --replicas "$i" >/dev/null
	kubectl wait pod "$sts-$i" -n "$ns" --for=delete --timeout=300s >/dev/null
	kubectl delete pvc "$claim-$sts-$i" -n "$ns" --wait=false >/dev/null
done
