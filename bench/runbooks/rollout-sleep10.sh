#!/usr/bin/env bash
# The staged rollout with the guides' fixed pause: lower the partition,
# sleep 10 seconds to let the controller replace the pod, then wait for it
# to be Ready. Safe only while a pod is replaced within 10 seconds, and
# never faster than 10 seconds per pod.
#
# usage: rollout-sleep10.sh NAMESPACE STATEFULSET
set -euo pipefail
ns=$1 sts=$2
replicas=$(kubectl get statefulset "$sts" -n "$ns" -o jsonpath='{.spec.replicas}')
for ((i = replicas - 1; i >= 0; i--)); do
	kubectl patch statefulset "$sts" -n "$ns" --type merge \
		-p "{\"spec\":{\"updateStrategy\":{\"rollingUpdate\":{\"partition\":$i}}}}" >/dev/null
	sleep 10
	kubectl wait pod "$sts-$i" -n "$ns" --for=condition=Ready --timeout=300s >/dev/null
done
