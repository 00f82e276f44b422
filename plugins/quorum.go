package plugins

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// RoleLearner is a member that replicates without voting: an etcd learner
// or a ZooKeeper observer. It does not count for quorum.
const RoleLearner Role = "learner"

// QuorumEngine is an Engine whose members vote (etcd, ZooKeeper). A
// removed pod's member must leave the voting membership before the pod
// goes, and no step may leave fewer healthy voters than quorum needs, so
// scale-down and rollout ask it for the membership and judge by quorum
// arithmetic instead of by the primary alone.
type QuorumEngine interface {
	Engine
	// Membership reads the voting membership and which voters answer.
	Membership(ctx context.Context, t Target) (Membership, error)
}

// Voter is one member of a voting membership.
type Voter struct {
	// Name is the member as the engine names it (etcd member name or ID,
	// ZooKeeper server id).
	Name string `json:"name"`
	// Pod runs the member; empty when no pod of the StatefulSet does (a
	// dead voter).
	Pod     string `json:"pod,omitempty"`
	Ordinal int    `json:"ordinal"`
	// Healthy is set when the member answered and follows the leader.
	Healthy bool `json:"healthy"`
}

// Membership is the voting configuration as the members that answered
// report it. Non-voters (learners, observers) are left out: they never
// count for quorum.
type Membership struct {
	Engine string  `json:"engine"`
	Voters []Voter `json:"voters"`
	// Learners are the members that replicate without voting (etcd
	// learners, ZooKeeper observers): their removal changes no quorum, but
	// is a change of the membership all the same.
	Learners []Voter `json:"learners,omitempty"`
	// Static, when set, says why the membership cannot be changed while the
	// cluster runs (e.g. ZooKeeper without dynamic reconfiguration) and what
	// to do instead; any removal of a voter is refused with it.
	Static string `json:"static,omitempty"`
}

// Quorum returns the votes a membership of n voters needs: a majority.
func Quorum(n int) int { return n/2 + 1 }

// Healthy returns the voters that answered.
func (m Membership) Healthy() []Voter {
	var out []Voter
	for _, v := range m.Voters {
		if v.Healthy {
			out = append(out, v)
		}
	}
	return out
}

// Lost returns the voters that do not answer, dead voters included.
func (m Membership) Lost() []Voter {
	var out []Voter
	for _, v := range m.Voters {
		if !v.Healthy {
			out = append(out, v)
		}
	}
	return out
}

// CheckRemoval judges a scale-down that removes the members of ordinals
// in this order, one at a time, each before its pod goes. It returns why
// that is unsafe, with the numbers, or nil: CheckSteps, and the result may
// not be two voters (quorum 2 of 2: losing either member stops writes).
func (m Membership) CheckRemoval(ordinals []int) []string {
	reasons := m.CheckSteps(ordinals)
	final := len(m.Voters)
	for _, v := range m.Voters {
		if v.Pod != "" && slices.Contains(ordinals, v.Ordinal) {
			final--
		}
	}
	if m.Static != "" && (final < len(m.Voters) || m.removesLearner(ordinals)) {
		reasons = append(reasons, m.Static)
	}
	if final == 2 && len(m.Voters) > 2 {
		reasons = append(reasons, fmt.Sprintf(
			"with 2 voters %s needs both for quorum (%d): losing either member, even for a restart, stops writes, so 2 tolerate no failure while doubling the chance of one; scale to 3 voters (tolerates 1) or, if you accept no redundancy, to 1",
			m.Engine, Quorum(2)))
	}
	return reasons
}

func (m Membership) removesLearner(ordinals []int) bool {
	for _, l := range m.Learners {
		if l.Pod != "" && slices.Contains(ordinals, l.Ordinal) {
			return true
		}
	}
	return false
}

// Learner returns the non-voting member the pod of ordinal runs.
func (m Membership) Learner(ordinal int) (Voter, bool) {
	for _, l := range m.Learners {
		if l.Pod != "" && l.Ordinal == ordinal {
			return l, true
		}
	}
	return Voter{}, false
}

// RemovalCheck words the check before the member name of ordinal's pod
// leaves the membership: the voters and quorum left, or, for a learner
// (kind says what the engine calls it), that they do not change.
func RemovalCheck(m Membership, name, pod string, ordinal int, kind string) string {
	if _, ok := m.Learner(ordinal); ok {
		return fmt.Sprintf("%s (%s) is %s: the %d voters and the quorum of %d do not change", name, pod, kind, len(m.Voters), Quorum(len(m.Voters)))
	}
	healthy := 0
	for _, v := range m.Healthy() {
		if v.Pod == "" || v.Ordinal != ordinal {
			healthy++
		}
	}
	return fmt.Sprintf("removing %s (%s) leaves %d voters of which %d answer; quorum is %d", name, pod, len(m.Voters)-1, healthy, Quorum(len(m.Voters)-1))
}

// CheckSteps is the quorum arithmetic of CheckRemoval: at no step may the
// healthy voters fall below the quorum of the membership left; and while a
// voter that stays does not answer, no step may use up the last failure
// the cluster tolerates (healthy voters just at quorum, where before the
// removal there were more): the lost member, not a healthy one, is what
// the cluster lacks. Ordinals with no voter (already removed, or
// learners) change nothing.
func (m Membership) CheckSteps(ordinals []int) []string {
	n, healthy := len(m.Voters), len(m.Healthy())
	if healthy < Quorum(n) {
		return []string{fmt.Sprintf("the %s membership has lost quorum already: %d of %d voters answer (%s), %d are needed; restore the lost members before changing the membership",
			m.Engine, healthy, n, names(m.Healthy()), Quorum(n))}
	}
	// Quorum loss is the worse verdict: name it first, whichever step.
	for _, check := range []func(gone Voter, left Membership) string{m.belowQuorum, m.lastTolerance} {
		voters := slices.Clone(m.Voters)
		for _, o := range ordinals {
			i := slices.IndexFunc(voters, func(v Voter) bool { return v.Pod != "" && v.Ordinal == o })
			if i < 0 {
				continue
			}
			gone := voters[i]
			voters = slices.Delete(voters, i, i+1)
			if len(voters) == 0 {
				break
			}
			if r := check(gone, Membership{Engine: m.Engine, Voters: slices.Clone(voters)}); r != "" {
				return []string{r}
			}
		}
	}
	return nil
}

func (m Membership) belowQuorum(gone Voter, left Membership) string {
	h := left.Healthy()
	if len(h) >= Quorum(len(left.Voters)) {
		return ""
	}
	return fmt.Sprintf(
		"removing %s leaves %d voters of which %d answer (%s), below the quorum of %d: the %s cluster would stop accepting writes; bring back %s first, or remove fewer members",
		gone.Pod, len(left.Voters), len(h), names(h), Quorum(len(left.Voters)), m.Engine, names(left.Lost()))
}

// lastTolerance refuses a step that leaves a lost voter in the membership
// and the healthy voters just at quorum, when the cluster tolerated a
// failure before the removal began.
func (m Membership) lastTolerance(gone Voter, left Membership) string {
	tolerates := len(m.Healthy()) - Quorum(len(m.Voters))
	h, lost := left.Healthy(), left.Lost()
	if len(lost) == 0 || tolerates < 1 || len(h) > Quorum(len(left.Voters)) {
		return ""
	}
	return fmt.Sprintf(
		"removing %s leaves %d voters of which %d answer (%s), only the quorum of %d, while %s does not answer: one more failure would stop the %s cluster, which tolerates %d now; bring back %s first, or remove fewer members",
		gone.Pod, len(left.Voters), len(h), names(h), Quorum(len(left.Voters)), names(lost), m.Engine, tolerates, names(lost))
}

// LostReason says why a rollout must not start: a voter is already lost,
// so rolling another one risks quorum. "" when every voter answers.
func (m Membership) LostReason() string {
	lost := m.Lost()
	if len(lost) == 0 {
		return ""
	}
	n := len(m.Voters)
	return fmt.Sprintf("the %s cluster has already lost %s: %d of %d voters answer and quorum is %d, so restarting another member would leave %d; restore it before rolling out",
		m.Engine, names(lost), n-len(lost), n, Quorum(n), n-len(lost)-1)
}

// names lists voters by ordinal (the membership's own order is the
// engine's, e.g. etcd's by member ID), voters without a pod last.
func names(vs []Voter) string {
	if len(vs) == 0 {
		return "none"
	}
	vs = slices.Clone(vs)
	slices.SortStableFunc(vs, func(a, b Voter) int {
		if (a.Pod == "") != (b.Pod == "") {
			if a.Pod == "" {
				return 1
			}
			return -1
		}
		return a.Ordinal - b.Ordinal
	})
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.Pod
		if v.Pod == "" {
			out[i] = v.Name + " (no pod)"
		}
	}
	return strings.Join(out, ", ")
}

// LeaderReason checks that exactly one member leads (Role primary), in a
// consensus engine's words; "" when so.
func LeaderReason(members []Member) string {
	switch r := PrimaryReason(members); r {
	case "":
		return ""
	case "no member is primary":
		return "no member is the leader"
	default:
		return strings.Replace(r, "more than one primary", "more than one leader", 1)
	}
}

// QuorumReason is where the Healthy of a consensus engine starts: every
// member answered (Unanswered), and no more than one of them leads. The
// leader may be outside members: the scale-down preflight judges the
// members that stay, and what counts is that they follow one leader.
// "" when both hold.
func QuorumReason(members []Member) string {
	if r := Unanswered(members); r != "" {
		return r
	}
	if len(Primaries(members)) > 1 {
		return LeaderReason(members)
	}
	return ""
}

// DetailWithoutPod is the Member detail where consensus engines list the
// members of the membership that no pod runs (dead voters).
const DetailWithoutPod = "membersWithoutPod"

// WithoutPodReason says which members of the membership no pod runs, with
// what to do about it, or "".
func WithoutPodReason(members []Member, fix string) string {
	for _, m := range members {
		if w := m.Details[DetailWithoutPod]; w != "" {
			return "the membership lists members no pod runs (dead voters): " + w + "; " + fix
		}
	}
	return ""
}

// Settle asks check every interval until it returns "" (settled) or an
// error, or wait has passed; waiting hears the first reason to wait, once.
func Settle(ctx context.Context, wait, interval time.Duration, check func(context.Context) (string, error), waiting func(why string)) error {
	deadline := time.Now().Add(wait)
	told := false
	for {
		why, err := check(ctx)
		switch {
		case err != nil:
			return err
		case why == "":
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("not settled within %s: %s", wait, why)
		case !told:
			waiting(why)
			told = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

// UnmappedReason says why quorum cannot be judged when pods do not answer
// and the membership lists members (listed, as the engine words them) that
// no pod can be matched to: which member each silent pod runs cannot be
// told. noun is the engine's word for a member, unlike how the listed ones
// differ from pods, byHand the command that removes one by hand.
func UnmappedReason(pods, listed []string, noun, unlike, byHand string) string {
	verb := "does"
	if len(pods) > 1 {
		verb = "do"
	}
	return fmt.Sprintf("%s %s not answer, and the membership lists %s, %s: "+
		"which %s each pod runs cannot be told, so quorum cannot be judged; bring %s back so that its %s answers, "+
		"or remove the %s by hand (%s) and scale down with --engine none",
		strings.Join(pods, ", "), verb, strings.Join(listed, "; "), unlike, noun, strings.Join(pods, ", "), noun, noun, byHand)
}
