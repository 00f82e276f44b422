package zookeeper

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-sts/kubectl-sts/plugins"
)

// DefaultRemoveWait bounds the wait for the ensemble to settle after a
// reconfiguration when RemoveOptions.Wait is zero.
const DefaultRemoveWait = 2 * time.Minute

// pollInterval is how often the ensemble is read while waiting.
const pollInterval = 500 * time.Millisecond

// BeforeRemove implements plugins.Engine: with dynamic reconfiguration it
// runs `reconfig -remove <id>` for the removed ordinal's server before its
// pod goes, refusing when the healthy voters left would be fewer than
// quorum needs, then waits until the servers that stay agree on the new
// membership and a leader. A server no longer in the membership (an
// interrupted run) is not removed again. Without dynamic reconfiguration
// it refuses with the steps to take by hand.
func (e *Engine) BeforeRemove(ctx context.Context, t plugins.Target, ordinal int, opts plugins.RemoveOptions) error {
	pod := t.PodName(ordinal)
	st, err := e.read(ctx, t)
	if err != nil {
		return err
	}
	m, err := st.membership(t)
	if err != nil {
		return err
	}
	id, found := st.podServer[pod]
	if !found {
		opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionSkipped, Pod: pod,
			Message: fmt.Sprintf("pod %s runs no server of the ZooKeeper membership (already removed)", pod)})
		return nil
	}
	if m.Static != "" {
		return errors.New(m.Static)
	}
	if reasons := m.CheckSteps([]int{ordinal}); len(reasons) > 0 {
		return errors.New(strings.Join(reasons, "; "))
	}
	object := "server." + strconv.Itoa(id)
	opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionChecked, Pod: pod, Object: object,
		Message: plugins.RemovalCheck(m, object, pod, ordinal, "an observer")})
	runner := st.runner(t, ordinal)
	if runner == nil {
		return fmt.Errorf("no ZooKeeper server that stays answers: %s", plugins.Unanswered(st.members))
	}
	if opts.DryRun {
		opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionChanged, Pod: runner.Name, Object: object,
			Message: fmt.Sprintf("would run reconfig -remove %d (%s)", id, pod)})
		return nil
	}
	out, err := t.Run(ctx, runner, t.ContainerFor(runner, e.Matches), "zkCli.sh",
		[]string{"bash", "-c", cliScript, "zkCli.sh", "reconfig", "-remove", strconv.Itoa(id)})
	msg := fmt.Sprintf("removed server.%d (%s) from the ZooKeeper ensemble with reconfig -remove", id, pod)
	if err != nil || !strings.Contains(string(out), "Committed new configuration") {
		if strings.Contains(string(out), "Reconfig is disabled") || strings.Contains(fmt.Sprint(err), "Reconfig is disabled") {
			return errors.New(staticSteps(t, "false"))
		}
		// Removing the leader ends its clients' sessions before the answer
		// arrives: the membership tells whether it committed.
		if serr := e.settle(ctx, t, ordinal, id, nil, plugins.RemoveOptions{Wait: 20 * time.Second}); serr != nil {
			return fmt.Errorf("reconfig -remove %d (%s) on %s did not commit: %v %s", id, pod, runner.Name, err, lastLines(string(out), 3))
		}
		msg += " (the answer was lost as the ensemble elected a new leader; the membership shows the change)"
	}
	opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionChanged, Pod: runner.Name, Object: object, Message: msg})
	var expect []string
	for _, p := range t.PodsExcept(ordinal) {
		if _, ok := st.views[p.Name]; ok {
			expect = append(expect, p.Name)
		}
	}
	return e.settle(ctx, t, ordinal, id, expect, opts)
}

// runner is a pod that stays whose server answers: the leader's if it
// stays, else the first follower's.
func (st state) runner(t plugins.Target, ordinal int) *corev1.Pod {
	var first *corev1.Pod
	for _, p := range t.PodsExcept(ordinal) {
		v, ok := st.views[p.Name]
		if !ok {
			continue
		}
		if v.Mode() == "leader" {
			return p
		}
		if first == nil && v.Mode() == "follower" {
			first = p
		}
	}
	return first
}

// settle waits until every staying server that served before the change
// (expect) serves again, none lists server id, and one of them leads. A
// removed leader makes the ensemble elect another, and a follower may take
// a while to rejoin.
func (e *Engine) settle(ctx context.Context, t plugins.Target, ordinal, id int, expect []string, opts plugins.RemoveOptions) error {
	wait := opts.Wait
	if wait <= 0 {
		wait = DefaultRemoveWait
	}
	stay := t
	stay.Pods = t.PodsExcept(ordinal)
	var last state
	err := plugins.Settle(ctx, wait, pollInterval, func(ctx context.Context) (string, error) {
		st, err := e.read(ctx, stay)
		last = st
		if err != nil {
			return "", err
		}
		for _, pod := range expect {
			if _, ok := st.views[pod]; !ok {
				return pod + " does not serve yet", nil
			}
		}
		for _, pod := range slices.Sorted(maps.Keys(st.views)) {
			for _, s := range st.views[pod].Members {
				if s.ID == id {
					return fmt.Sprintf("%s still lists server.%d", pod, id), nil
				}
			}
		}
		if st.leader == "" {
			return "no server that stays leads", nil
		}
		return "", nil
	}, func(why string) {
		opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionWaiting, Object: "membership",
			Message: "waiting for the servers that stay to agree on the membership: " + why})
	})
	if err != nil {
		return fmt.Errorf("the ZooKeeper servers that stay: %w", err)
	}
	opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionChecked, Object: "membership",
		Message: fmt.Sprintf("the %d servers that stay agree on the membership (version %s); %s leads", len(last.views), last.authority.ConfigVersion, last.leader)})
	return nil
}

// AfterRemove implements plugins.Engine: nothing is left to clean up; a
// server the membership still lists is reported, as it is a dead voter.
func (e *Engine) AfterRemove(ctx context.Context, t plugins.Target, ordinal int, opts plugins.RemoveOptions) error {
	st, err := e.read(ctx, t)
	if err != nil {
		return err
	}
	pod := t.PodName(ordinal)
	found := false
	for _, s := range st.authority.Members {
		if PodOf(s, nil, map[string]int{pod: ordinal}) == pod {
			found = true
			opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionWarning, Object: "server." + strconv.Itoa(s.ID),
				Message: fmt.Sprintf("the membership still lists server.%d of the removed pod %s, a voter that will never answer: remove it with zkCli.sh reconfig -remove %d", s.ID, pod, s.ID)})
		}
	}
	if !found && len(st.withoutPod) > 0 {
		// Hosts that name no pod (IP addresses): the removed pod's server
		// may be among them, but nothing tells which.
		var lines []string
		for _, s := range st.withoutPod {
			lines = append(lines, s.Line)
		}
		opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionWarning, Object: "membership",
			Message: fmt.Sprintf("no server's host names %s, but the membership lists servers no pod runs: %s; if one of them was %s's, it is a voter that will never answer: remove it with zkCli.sh reconfig -remove <id>",
				pod, strings.Join(lines, "; "), pod)})
	}
	return nil
}

func lastLines(s string, n int) string {
	ls := lines(s)
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "; ")
}
