package plugins

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
)

// DefaultGateInterval is how often HealthGate asks the databases at most.
const DefaultGateInterval = 2 * time.Second

// HealthGate returns a wait.Gate that passes when e judges the
// StatefulSet's current pods healthy within opts. An unhealthy or
// unreadable replica set is NotYet (a replica catches up, a restarted pod
// comes back); the wait's own timeout ends a wait that never passes.
// t gives the executor, container, parallelism and per-query timeout; its
// StatefulSet and Pods are taken from each snapshot. The databases are
// asked at most once per interval (DefaultGateInterval if zero).
func HealthGate(e Engine, t Target, opts HealthOptions, interval time.Duration) wait.Gate {
	if interval <= 0 {
		interval = DefaultGateInterval
	}
	return &healthGate{engine: e, target: t, opts: opts, interval: interval}
}

type healthGate struct {
	engine   Engine
	target   Target
	opts     HealthOptions
	interval time.Duration

	last    time.Time
	verdict wait.Verdict
	reason  string
}

func (g *healthGate) Name() string {
	var bounds []string
	if g.opts.MaxLagBytes > 0 {
		bounds = append(bounds, fmt.Sprintf("%d bytes", g.opts.MaxLagBytes))
	}
	if g.opts.MaxLagSeconds > 0 {
		bounds = append(bounds, fmt.Sprintf("%gs", g.opts.MaxLagSeconds))
	}
	name := g.engine.Name() + " replication to be healthy"
	if len(bounds) > 0 {
		name += " with lag under " + strings.Join(bounds, " and ")
	}
	return name
}

func (g *healthGate) Object() string {
	if g.target.StatefulSet != nil {
		return "statefulset " + g.target.StatefulSet.Name
	}
	return ""
}

func (g *healthGate) NextCheck() time.Time {
	if g.last.IsZero() {
		return time.Time{}
	}
	return g.last.Add(g.interval)
}

func (g *healthGate) Check(ctx context.Context, s wait.Snapshot) (wait.Verdict, string, error) {
	if !g.last.IsZero() && time.Since(g.last) < g.interval {
		return g.verdict, g.reason, nil
	}
	g.last = time.Now()
	t := g.target
	if s.StatefulSet != nil {
		t.StatefulSet = s.StatefulSet
	}
	t.Pods = s.OrderedPods()
	members, err := g.engine.Members(ctx, t)
	switch {
	case err != nil && ctx.Err() != nil:
		return wait.NotYet, "", ctx.Err()
	case err != nil:
		g.verdict, g.reason = wait.NotYet, "cannot read the database: "+err.Error()
	default:
		if ok, reason := g.engine.Healthy(members, g.opts); ok {
			g.verdict, g.reason = wait.Pass, "healthy"
		} else {
			g.verdict, g.reason = wait.NotYet, reason
		}
	}
	return g.verdict, g.reason, nil
}
