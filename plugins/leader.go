package plugins

import "context"

// LeaderLastEngine is a consensus engine whose leader a rollout must roll
// last but that has no command to transfer the leadership (ZooKeeper).
// Restarting a member costs an election when it leads, and an election
// among members still on the old revision is one more later. So before a
// step would roll the leader while a member below it is still on the old
// revision, the rollout restarts the leader's pod in place (still on its
// revision, below the partition) and the engine's own election moves the
// leadership, normally to a member already updated; the rollout then reads
// the leadership again before it goes on.
type LeaderLastEngine interface {
	QuorumEngine
	// Leadership reads which member leads and which voters are synced
	// with it.
	Leadership(ctx context.Context, t Target) (Leadership, error)
	// ElectionRule says in the engine's words which member an election
	// normally picks, for the plan.
	ElectionRule() string
}

// Leadership is who leads a consensus ensemble and who follows in sync.
type Leadership struct {
	Engine string `json:"engine"`
	// Leader is the pod whose member leads; "" when none does.
	Leader        string `json:"leader,omitempty"`
	LeaderOrdinal int    `json:"leaderOrdinal"`
	// Voters are the voting members; Healthy is set when a member answered,
	// leads or follows, and is within the engine's lag bound.
	Voters []Voter `json:"voters"`
}

// Voter returns the voter that pod runs.
func (l Leadership) Voter(pod string) (Voter, bool) {
	for _, v := range l.Voters {
		if v.Pod == pod {
			return v, true
		}
	}
	return Voter{}, false
}
