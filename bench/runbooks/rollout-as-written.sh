#!/usr/bin/env bash
# The staged rollout as the common guides write it: lower the partition one
# ordinal at a time and `kubectl wait` for that pod to be Ready.
#
# It is racy, and kept here as written so the benchmark can show it: right
# after the patch the pod is usually still the OLD pod, still Ready, so
# `kubectl wait` returns at once; or the controller has just deleted it and
# `kubectl wait` fails with NotFound in the delete/recreate gap, which the
# loop ignores. The script then finishes while pods are still being updated.
#
# usage: rollout-as-written.sh NAMESPACE STATEFULSET
set -u
ns=$1 sts=$2
replicas=$(kubectl get statefulset "$sts" -n "$ns" -o jsonpath='{.spec.replicas}')
for ((i = replicas - 1; i >= 0; i--)); do
	kubectl patch statefulset "$sts" -n "$ns" --type merge \
		-p "{\"spec\":{\"updateStrategy\":{\"rollingUpdate\":{\"partition\":$i}}}}" >/dev/null
	kubectl wait pod "$sts-$i" -n "$ns" --for=condition=Ready --timeout=300s >/dev/null
done
