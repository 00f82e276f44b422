// Package status builds the model behind `kubectl sts status`: a JSON-tagged
// Report of one StatefulSet (revisions, partition, every ordinal's pod and
// claims, claims left over from old ordinals, the engine's members) and a
// Verdict with reasons.
//
// Fetch and FetchAll read the cluster with a fixed number of requests
// whatever the replica count. Summarize and Judge are pure functions of
// the objects and the clock, so workflows that must refuse to start on an
// unhealthy StatefulSet (scale-down, expand-pvc) or detect a pending
// rollout call them on objects they already hold.
//
// The package never prints; pkg/ui renders reports.
package status
