package plugins

import (
	"fmt"
	"strings"
)

// Unanswered returns why the replica set cannot be judged because some
// members did not answer, or "".
func Unanswered(members []Member) string {
	if len(members) == 0 {
		return "no pods to ask"
	}
	var bad []string
	for _, m := range members {
		if m.Error != "" {
			bad = append(bad, fmt.Sprintf("%s (%s)", m.Pod, m.Error))
		}
	}
	if len(bad) == 0 {
		return ""
	}
	return "no answer from " + strings.Join(bad, ", ")
}

// ReplicationReason is where the Healthy of a primary/replica engine
// starts: every member answered (Unanswered) and exactly one is primary
// (PrimaryReason); "" when both hold.
func ReplicationReason(members []Member) string {
	if r := Unanswered(members); r != "" {
		return r
	}
	return PrimaryReason(members)
}

// Primaries returns the members in the primary role.
func Primaries(members []Member) []Member {
	var out []Member
	for _, m := range members {
		if m.Role == RolePrimary {
			out = append(out, m)
		}
	}
	return out
}

// PrimaryReason checks there is exactly one primary; "" when so.
func PrimaryReason(members []Member) string {
	p := Primaries(members)
	switch len(p) {
	case 1:
		return ""
	case 0:
		return "no member is primary"
	default:
		names := make([]string, len(p))
		for i, m := range p {
			names[i] = m.Pod
		}
		return "more than one primary: " + strings.Join(names, ", ")
	}
}

// Problems collects what keeps a replica set from being healthy, in the
// order an engine's Healthy finds it.
type Problems []string

// Add notes reason; the "" of a check that found nothing adds nothing.
func (p *Problems) Add(reason string) {
	if reason != "" {
		*p = append(*p, reason)
	}
}

// Addf notes a formatted reason.
func (p *Problems) Addf(format string, args ...any) { p.Add(fmt.Sprintf(format, args...)) }

// AddReplicas notes, for each member that is neither primary nor
// replica, what role says of it ("" when that is no problem), and for each
// replica what broken says of its replication ("" when it works) or else
// its lag against opts (LagReason).
func (p *Problems) AddReplicas(members []Member, opts HealthOptions, role, broken func(Member) string) {
	for _, m := range members {
		switch m.Role {
		case RolePrimary:
		case RoleReplica:
			if why := broken(m); why != "" {
				p.Add(why)
				continue
			}
			p.Add(LagReason(m, opts))
		default:
			p.Add(role(m))
		}
	}
}

// Verdict is Healthy's answer: true without problems, else false and the
// problems joined by "; ".
func (p Problems) Verdict() (bool, string) {
	if len(p) > 0 {
		return false, strings.Join(p, "; ")
	}
	return true, ""
}

// LagReason checks a replica's lag against the bounds; "" when within.
// A bound that is set with the lag unknown is a failure: the gate cannot
// vouch for what it cannot see.
func LagReason(m Member, opts HealthOptions) string {
	if opts.MaxLagBytes > 0 {
		switch {
		case m.LagBytes == nil:
			return fmt.Sprintf("%s: lag in bytes unknown (bound %d)", m.Pod, opts.MaxLagBytes)
		case *m.LagBytes > opts.MaxLagBytes:
			return fmt.Sprintf("%s: %d bytes behind (bound %d)", m.Pod, *m.LagBytes, opts.MaxLagBytes)
		}
	}
	if opts.MaxLagSeconds > 0 {
		switch {
		case m.LagSeconds == nil:
			return fmt.Sprintf("%s: lag in seconds unknown (bound %gs)", m.Pod, opts.MaxLagSeconds)
		case *m.LagSeconds > opts.MaxLagSeconds:
			return fmt.Sprintf("%s: %.1fs behind (bound %gs)", m.Pod, *m.LagSeconds, opts.MaxLagSeconds)
		}
	}
	return ""
}

// FindMember returns the member of ordinal.
func FindMember(members []Member, ordinal int) (Member, bool) {
	for _, m := range members {
		if m.Ordinal == ordinal {
			return m, true
		}
	}
	return Member{}, false
}

// RefusePrimary returns an error when the member of ordinal is, or may be,
// the primary: removing it would lose the writer. A member that did not
// answer is accepted only when another member answered as the primary.
func RefusePrimary(members []Member, ordinal int) error {
	m, ok := FindMember(members, ordinal)
	if !ok {
		return nil
	}
	if m.Role == RolePrimary {
		return fmt.Errorf("pod %s is the primary: switch the primary to a member that stays, then scale down", m.Pod)
	}
	if m.Role == RoleUnknown {
		for _, o := range members {
			if o.Ordinal != ordinal && o.Role == RolePrimary {
				return nil
			}
		}
		why := m.Error
		if why == "" {
			why = "its role is unknown"
		}
		return fmt.Errorf("cannot tell whether pod %s is the primary (%s) and no other member answered as primary; "+
			"fix the database or pass --engine none to skip the engine steps", m.Pod, why)
	}
	return nil
}

// Int64 returns a pointer to v, for Member lag fields.
func Int64(v int64) *int64 { return &v }

// Int returns a pointer to v.
func Int(v int) *int { return &v }

// Float64 returns a pointer to v, for Member lag fields.
func Float64(v float64) *float64 { return &v }

// NotPrimaryMessage says why the member of ordinal may be removed, once
// RefusePrimary accepted it, for the record of the scale-down.
func NotPrimaryMessage(members []Member, ordinal int) string {
	m, ok := FindMember(members, ordinal)
	if !ok {
		return fmt.Sprintf("ordinal %d has no pod", ordinal)
	}
	if m.Role != RoleUnknown || m.Error == "" {
		return fmt.Sprintf("pod %s is not the primary (role %s)", m.Pod, m.Role)
	}
	var primaries []string
	for _, p := range Primaries(members) {
		primaries = append(primaries, p.Pod)
	}
	return fmt.Sprintf("pod %s did not answer (%s); the primary is %s", m.Pod, m.Error, strings.Join(primaries, ", "))
}
