#!/usr/bin/env bash
# PVC expansion by hand, one ordinal at a time from the highest: patch the
# claim, wait for the controller side of the resize, restart the pod so the
# file system resize can finish, wait for the new pod to be Ready and for
# the claim's capacity to reach the new size.
#
# usage: expand-pvc.sh NAMESPACE STATEFULSET CLAIM SIZE
set -euo pipefail
ns=$1 sts=$2 claim=$3 size=$4
replicas=$(kubectl get statefulset "$sts" -n "$ns" -o jsonpath='{.spec.replicas}')
for ((i = replicas - 1; i >= 0; i--)); do
	pvc="$claim-$sts-$i"
	kubectl patch pvc "$pvc" -n "$ns" --type merge \
		-p "{\"spec\":{\"resources\":{\"requests\":{\"storage\":\"$size\"}}}}" >/dev/null
	kubectl wait pvc "$pvc" -n "$ns" --for=condition=FileSystemResizePending --timeout=300s >/dev/null
	uid=$(kubectl get pod "$sts-$i" -n "$ns" -o jsonpath='{.metadata.uid}')
	kubectl delete pod "$sts-$i" -n "$ns" --wait=false >/dev/null
	until [ "$(kubectl get pod "$sts-$i" -n "$ns" -o jsonpath='{.metadata.uid}' 2>/dev/null || true)" != "$uid" ] &&
		kubectl wait pod "$sts-$i" -n "$ns" --for=condition=Ready --timeout=300s >/dev/null 2>&1; do
		sleep 0.1
	done
	kubectl wait pvc "$pvc" -n "$ns" --for=jsonpath='{.status.capacity.storage}'="$size" --timeout=300s >/dev/null
done
