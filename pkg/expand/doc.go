// Package expand is the expand-pvc workflow: it grows the PersistentVolumeClaims
// of one volumeClaimTemplate of a StatefulSet, one ordinal at a time, restarts a
// pod only when its file system resize waits for one, and then makes the
// StatefulSet's volumeClaimTemplates say the new size by recreating the
// StatefulSet with orphan propagation, keeping its pods and claims.
//
// Preflight reads the cluster and builds a Plan (or refuses with a
// *PreflightError listing every problem) without changing anything; Run
// executes a Plan. Progress is kept in the StatefulSet's journal record so an
// interrupted run is continued by running the same command again, and is
// reported as progress events; the package never prints.
package expand
