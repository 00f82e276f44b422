package mysql

import (
	"fmt"

	"github.com/kubectl-sts/kubectl-sts/plugins"
)

var _ plugins.TrapFinder = (*Engine)(nil)

// Traps implements plugins.TrapFinder: a replica whose IO or SQL thread
// is not running is broken.
func (e *Engine) Traps(members []plugins.Member, _ plugins.TrapOptions) []plugins.Trap {
	var out []plugins.Trap
	for _, m := range members {
		if m.Role != plugins.RoleReplica || m.Error != "" || m.State == "Yes/Yes" {
			continue
		}
		msg := fmt.Sprintf("replica %s has replication threads IO/SQL %s", m.Pod, m.State)
		if errText := firstNonEmpty(m.Details["lastIOError"], m.Details["lastSQLError"]); errText != "" {
			msg += ": " + errText
		}
		out = append(out, plugins.Trap{Code: plugins.TrapReplicationBroken, Broken: true, Object: "pod/" + m.Pod, Message: msg,
			Hint: fmt.Sprintf("read SHOW REPLICA STATUS on %s, fix the cause, then START REPLICA", m.Pod)})
	}
	return out
}
