package scaledown

import (
	"fmt"
	"strconv"
	"strings"
)

// Placeholders a --slot-name may contain; each is replaced per removed
// ordinal.
const (
	PlaceholderOrdinal = "{ordinal}"
	// PlaceholderPod is the pod name with '-' replaced by '_', since slot
	// names allow only lower-case letters, digits and underscores.
	PlaceholderPod = "{pod}"
)

// ValidateSlotNames checks --slot-name templates before anything runs.
// With more than one ordinal to remove, every template must contain a
// placeholder, or the same slot would be dropped for each of them.
func ValidateSlotNames(templates []string, sts string, ordinals []int) error {
	for _, t := range templates {
		if len(ordinals) > 1 && !strings.Contains(t, PlaceholderOrdinal) && !strings.Contains(t, PlaceholderPod) {
			return fmt.Errorf("--slot-name %q names one slot, but %d ordinals are removed: use %s or %s in it (e.g. %q)",
				t, len(ordinals), PlaceholderOrdinal, PlaceholderPod, "replica_"+PlaceholderOrdinal)
		}
		for _, n := range ordinals {
			if err := validSlotName(ExpandSlotName(t, sts, n)); err != nil {
				return fmt.Errorf("--slot-name %q: %w", t, err)
			}
		}
		if len(ordinals) == 0 {
			if err := validSlotName(ExpandSlotName(t, sts, 0)); err != nil {
				return fmt.Errorf("--slot-name %q: %w", t, err)
			}
		}
	}
	return nil
}

// validSlotName applies PostgreSQL's rule for replication slot names:
// lower-case letters, digits and underscores, at most NAMEDATALEN-1 bytes.
func validSlotName(name string) error {
	ok := len(name) >= 1 && len(name) <= 63
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("%q is not a valid replication slot name: use 1 to 63 lower-case letters, digits and underscores", name)
	}
	return nil
}

// ExpandSlotName fills a --slot-name template for one ordinal.
func ExpandSlotName(template, sts string, ordinal int) string {
	pod := strings.ReplaceAll(fmt.Sprintf("%s-%d", sts, ordinal), "-", "_")
	r := strings.NewReplacer(PlaceholderOrdinal, strconv.Itoa(ordinal), PlaceholderPod, pod)
	return r.Replace(template)
}

// SlotNamesFor expands every template for one ordinal.
func SlotNamesFor(templates []string, sts string, ordinal int) []string {
	if len(templates) == 0 {
		return nil
	}
	out := make([]string, len(templates))
	for i, t := range templates {
		out[i] = ExpandSlotName(t, sts, ordinal)
	}
	return out
}
