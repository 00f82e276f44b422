// Package scaledown is the safe scale-down workflow of a StatefulSet that
// runs a database, and the cleanup of claims left behind by earlier
// scale-downs.
//
// Prepare reads the cluster and builds a Plan without changing anything:
// which ordinals go (from the top), which of their claims are touched and
// how, and every reason the scale-down would be unsafe now (a removed
// ordinal is the primary, a PodDisruptionBudget would be violated, an
// autoscaler owns the scale, a rollout is in progress or pods that stay are
// not Ready). Execute then removes one ordinal at a time: the engine's
// pre-removal step, the scale to that ordinal, a watch until the pod is
// gone, the engine's post-removal step (e.g. dropping the member's
// replication slot once it is inactive), and the action on that ordinal's
// claims only (keep, delete, or snapshot then delete). Progress is kept in
// the journal after every stage, so a killed run resumes where it stopped.
//
// The package never prints: it reports through progress events and
// Kubernetes Events on the StatefulSet.
package scaledown
