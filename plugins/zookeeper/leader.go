package zookeeper

import (
	"context"
	"strconv"

	"github.com/kubectl-sts/kubectl-sts/plugins"
)

var _ plugins.LeaderLastEngine = (*Engine)(nil)

// Leadership implements plugins.LeaderLastEngine: the pod whose server
// answers srvr with Mode: leader, and the participants of the leader's
// membership, healthy when their server leads, or follows within
// MaxZxidLag transactions of the leader.
func (e *Engine) Leadership(ctx context.Context, t plugins.Target) (plugins.Leadership, error) {
	st, err := e.read(ctx, t)
	if err != nil {
		return plugins.Leadership{}, err
	}
	m, err := st.membership(t)
	if err != nil {
		return plugins.Leadership{}, err
	}
	out := plugins.Leadership{Engine: Name, Leader: st.leader, LeaderOrdinal: -1, Voters: m.Voters}
	if st.leader != "" {
		out.LeaderOrdinal = st.pods[st.leader]
	}
	lag := map[string]string{}
	for _, mem := range st.members {
		lag[mem.Pod] = mem.Details["zxidLag"]
	}
	for i := range out.Voters {
		v := &out.Voters[i]
		if !v.Healthy || v.Pod == st.leader {
			continue
		}
		n, err := strconv.ParseInt(lag[v.Pod], 10, 64)
		v.Healthy = err == nil && n <= e.maxLag()
	}
	return out, nil
}

// ElectionRule implements plugins.LeaderLastEngine.
func (e *Engine) ElectionRule() string {
	return "ZooKeeper has no leadership transfer; its election picks the server with the newest zxid, then the highest server id"
}
