package postgres

import (
	"fmt"
	"strings"
)

// maxIdentifier is NAMEDATALEN-1, the longest name PostgreSQL keeps.
const maxIdentifier = 63

// ValidateSlotName checks a replication slot name the way the server does
// (ReplicationSlotValidateName): 1 to 63 lower-case letters, digits and
// underscores. Anything else is refused before it reaches SQL.
func ValidateSlotName(name string) error {
	if name == "" {
		return fmt.Errorf("replication slot name is empty")
	}
	if len(name) > maxIdentifier {
		return fmt.Errorf("replication slot name %q is longer than %d characters", name, maxIdentifier)
	}
	for _, c := range name {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return fmt.Errorf("replication slot name %q may contain only lower-case letters, digits and underscores", name)
		}
	}
	return nil
}

// QuoteLiteral quotes s as an SQL string literal that means s whatever
// standard_conforming_strings is: quotes are doubled, and a string with a
// backslash becomes an escape-string literal (E'…') with the backslash
// escaped. A NUL byte cannot be in an SQL string at all and is refused by
// the callers' validation; QuoteLiteral drops it so the result is still
// one literal.
func QuoteLiteral(s string) string {
	s = strings.ReplaceAll(s, "\x00", "")
	s = strings.ReplaceAll(s, "'", "''")
	if strings.Contains(s, `\`) {
		return ` E'` + strings.ReplaceAll(s, `\`, `\\`) + `'`
	}
	return "'" + s + "'"
}

// SlotNameFromMember turns a member (pod) name into a slot name the way
// Patroni does: lower-case, '-' and '.' become '_', any other character
// outside [a-z0-9_] becomes u<code>, cut to 63 characters.
func SlotNameFromMember(member string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(member) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_':
			b.WriteRune(c)
		case c == '-', c == '.':
			b.WriteByte('_')
		default:
			fmt.Fprintf(&b, "u%04d", c)
		}
	}
	s := b.String()
	if len(s) > maxIdentifier {
		s = s[:maxIdentifier]
	}
	return s
}

// SlotCandidates are the names the common conventions give the slot of
// the StatefulSet's member of ordinal, most common first:
//
//	pg_1             Patroni (Spilo, Zalando, Crunchy): the member name
//	slot_pg_1        slot_<statefulset>_<ordinal>
//	_cnpg_pg_1       CloudNativePG: _cnpg_ and the instance name
//	repmgr_slot_1001 repmgr as the Bitnami postgresql-ha chart runs it
//	                 (node id 1000 + ordinal)
func SlotCandidates(statefulSet string, ordinal int) []string {
	pod := fmt.Sprintf("%s-%d", statefulSet, ordinal)
	names := []string{
		SlotNameFromMember(pod),
		SlotNameFromMember(fmt.Sprintf("slot_%s_%d", statefulSet, ordinal)),
		SlotNameFromMember("_cnpg_" + pod),
		fmt.Sprintf("repmgr_slot_%d", 1000+ordinal),
	}
	var out []string
	seen := map[string]bool{}
	for _, n := range names {
		if !seen[n] && ValidateSlotName(n) == nil {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}
