#!/usr/bin/env bash
# The staged rollout done right by hand: after lowering the partition, wait
# until the pod of that ordinal carries the update revision (the controller
# has replaced it; the pod may be NotFound for a moment in between), then
# until that pod is Ready.
#
# usage: rollout-corrected.sh NAMESPACE STATEFULSET
set -euo pipefail
ns=$1 sts=$2
replicas=$(kubectl get statefulset "$sts" -n "$ns" -o jsonpath='{.spec.replicas}')
rev=$(kubectl get statefulset "$sts" -n "$ns" -o jsonpath='{.status.updateRevision}')
for ((i = replicas - 1; i >= 0; i--)); do
	kubectl patch statefulset "$sts" -n "$ns" --type merge \
		-p "{\"spec\":{\"updateStrategy\":{\"rollingUpdate\":{\"partition\":$i}}}}" >/dev/null
	until kubectl wait pod "$sts-$i" -n "$ns" --timeout=300s \
		--for=jsonpath='{.metadata.labels.controller-revision-hash}'="$rev" >/dev/null 2>&1; do
		sleep 0.1
	done
	kubectl wait pod "$sts-$i" -n "$ns" --for=condition=Ready --timeout=300s >/dev/null
done
