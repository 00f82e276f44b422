package plugins

import "context"

// LeftoverSlot is the Leftover kind of a replication slot.
const LeftoverSlot = "slot"

// Leftover is something removed members left on the members that remain,
// e.g. a PostgreSQL replication slot named for a removed ordinal, which
// keeps the primary's WAL until it is dropped.
type Leftover struct {
	// Kind is what it is, e.g. "slot".
	Kind string `json:"kind"`
	Name string `json:"name"`
	// On is the pod holding it (the primary).
	On string `json:"on"`
	// Ordinal is the removed member it is named for; nil when its name
	// follows no convention (it was named explicitly).
	Ordinal *int `json:"ordinal,omitempty"`
	// Type is the engine's kind of it, e.g. "physical" or "logical".
	Type   string `json:"type,omitempty"`
	Active bool   `json:"active"`
	// RetainedBytes is the WAL it keeps on the primary, where known.
	RetainedBytes *int64 `json:"retainedBytes,omitempty"`
	// Explicit is set when the user named it (--slot).
	Explicit bool `json:"explicit,omitempty"`
	// Drop says the cleanup drops it; Reason says why, or why not.
	Drop   bool   `json:"drop"`
	Reason string `json:"reason"`
}

// LeftoverOptions say what counts as a removed member's.
type LeftoverOptions struct {
	// OrdinalsStart and Replicas are the StatefulSet's desired ordinals:
	// what is named for an ordinal outside them (with no pod) belongs to a
	// removed member.
	OrdinalsStart int
	Replicas      int
	// Names are slots the user named explicitly: considered whatever
	// their name or type, still only when inactive and used by no member.
	Names []string
}

// Desired reports whether ordinal is within the desired range.
func (o LeftoverOptions) Desired(ordinal int) bool {
	return ordinal >= o.OrdinalsStart && ordinal < o.OrdinalsStart+o.Replicas
}

// LeftoverCleaner is implemented by engines whose members keep state for
// other members that outlives them (PostgreSQL replication slots).
// `kubectl sts cleanup` lists and drops it.
type LeftoverCleaner interface {
	// Leftovers reads the remaining members and lists what removed
	// members left, each marked with whether it would be dropped and
	// why. It changes nothing.
	Leftovers(ctx context.Context, t Target, opts LeftoverOptions) ([]Leftover, error)
	// DropLeftover re-reads the members and drops l only if it is still
	// safe (it exists, is inactive, no member uses it, the primary is
	// the same); an l that is already gone is success. It reports what
	// it did through opts.Events.
	DropLeftover(ctx context.Context, t Target, l Leftover, opts LeftoverOptions, events RemoveOptions) error
}
