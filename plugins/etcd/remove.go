package etcd

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-sts/kubectl-sts/plugins"
)

// ctl runs etcdctl with args in pod. A failure carries etcdctl's own
// "Error:" line, which follows its client's log lines on standard error.
func (e *Engine) ctl(ctx context.Context, t plugins.Target, pod *corev1.Pod, args ...string) (string, error) {
	out, err := t.Run(ctx, pod, t.ContainerFor(pod, e.Matches), "etcdctl", append([]string{"etcdctl"}, args...))
	var ce *plugins.CommandError
	if errors.As(err, &ce) {
		for _, line := range strings.Split(ce.Stderr, "\n") {
			if strings.HasPrefix(line, "Error:") {
				c := *ce
				c.Stderr = line
				return string(out), &c
			}
		}
	}
	return string(out), err
}

// transient reports etcd's refusals that pass by themselves: a leader
// that has not yet been connected to its peers for its health interval,
// a leader change, a request that timed out.
func transient(err error) bool {
	var ce *plugins.CommandError
	if !errors.As(err, &ce) {
		return false
	}
	for _, s := range []string{"unhealthy cluster", "leader changed", "no leader", "request timed out", "Unavailable"} {
		if strings.Contains(ce.Stderr, s) {
			return true
		}
	}
	return false
}

// retry runs f until it succeeds, fails for good, or wait passes, telling
// once that it waits.
func (e *Engine) retry(ctx context.Context, wait time.Duration, waiting func(error), f func() error) error {
	deadline := time.Now().Add(wait)
	told := false
	for {
		err := f()
		if err == nil || !transient(err) || time.Now().After(deadline) {
			return err
		}
		if !told {
			waiting(err)
			told = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(e.interval()):
		}
	}
}

func (e *Engine) interval() time.Duration {
	if e.PollInterval > 0 {
		return e.PollInterval
	}
	return 500 * time.Millisecond
}

func removeWait(opts plugins.RemoveOptions) time.Duration {
	if opts.Wait > 0 {
		return opts.Wait
	}
	return DefaultRemoveWait
}

// target finds the membership entry of ordinal's pod: the ID its member
// answered with, else the entry mapped to the pod by name or peer URL.
func (st state) target(pod string) (MemberInfo, bool) {
	if id, ok := st.cluster.MemberOfPod[pod]; ok {
		return memberByID(st.cluster.Membership, id)
	}
	return MemberInfo{}, false
}

// BeforeRemove implements plugins.Engine: it removes the member of ordinal
// from the membership before its pod goes, so the cluster never counts a
// dead voter. It refuses when the healthy voters left would be fewer than
// quorum needs; moves the leadership to a staying member first when the
// member leads; and waits until the members that stay agree on a
// membership without it and on one leader. A member already gone from the
// membership (an interrupted run) is not removed again.
func (e *Engine) BeforeRemove(ctx context.Context, t plugins.Target, ordinal int, opts plugins.RemoveOptions) error {
	pod := t.PodName(ordinal)
	st, err := e.read(ctx, t)
	if err != nil {
		return err
	}
	mship, err := st.membership()
	if err != nil {
		return err
	}
	m, found := st.target(pod)
	if !found {
		opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionSkipped, Pod: pod,
			Message: fmt.Sprintf("pod %s runs no member of the etcd membership (already removed)", pod)})
		if opts.DryRun {
			return nil
		}
		return e.settle(ctx, t, ordinal, 0, opts)
	}
	if reasons := mship.CheckSteps([]int{ordinal}); len(reasons) > 0 {
		return errors.New(strings.Join(reasons, "; "))
	}
	id := HexID(m.ID)
	object := "member " + id
	opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionChecked, Pod: pod, Object: object,
		Message: plugins.RemovalCheck(mship, object, pod, ordinal, "a learner")})

	runner, err := st.staying(t, ordinal)
	if err != nil {
		return err
	}
	if st.cluster.Leader == m.ID {
		to, ok := st.successor(ordinal)
		if !ok {
			return fmt.Errorf("member %s (%s) is the leader and no other voter answers to take over", id, pod)
		}
		msg := fmt.Sprintf("moved the leadership from %s to %s (member %s)", pod, st.cluster.PodOfMember[to], HexID(to))
		if opts.DryRun {
			msg = "would move the leadership from " + strings.TrimPrefix(msg, "moved the leadership from ")
		} else {
			leaderPod := t.Pod(ordinal)
			err := e.retry(ctx, removeWait(opts), func(err error) {
				opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionWaiting, Pod: pod, Object: object,
					Message: "etcd does not accept the leadership transfer yet, retrying: " + err.Error()})
			}, func() error {
				_, err := e.ctl(ctx, t, leaderPod, "move-leader", HexID(to))
				return err
			})
			if err != nil {
				return fmt.Errorf("moving the leadership away from %s: %w", pod, err)
			}
		}
		opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionChanged, Pod: pod, Object: object, Message: msg})
		if !opts.DryRun {
			// The removal goes through the new leader once all follow it.
			if err := e.settle(ctx, t, ordinal, 0, opts); err != nil {
				return err
			}
			if st, err = e.read(ctx, t); err != nil {
				return err
			}
			if runner, err = st.staying(t, ordinal); err != nil {
				return err
			}
		}
	}
	if opts.DryRun {
		opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionChanged, Pod: runner.Name, Object: object,
			Message: fmt.Sprintf("would remove member %s (%s, peer %s) from the etcd membership", id, pod, strings.Join(m.PeerURLs, ","))})
		return nil
	}
	err = e.retry(ctx, removeWait(opts), func(err error) {
		opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionWaiting, Pod: runner.Name, Object: object,
			Message: "etcd does not accept the removal yet, retrying: " + err.Error()})
	}, func() error {
		_, err := e.ctl(ctx, t, runner, "member", "remove", id)
		return err
	})
	if err != nil {
		var ce *plugins.CommandError
		if !errors.As(err, &ce) || !strings.Contains(ce.Stderr, "member not found") {
			return fmt.Errorf("removing member %s (%s): %w", id, pod, err)
		}
	}
	opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionChanged, Pod: runner.Name, Object: object,
		Message: fmt.Sprintf("removed member %s (%s, peer %s) from the etcd membership", id, pod, strings.Join(m.PeerURLs, ","))})
	return e.settle(ctx, t, ordinal, m.ID, opts)
}

// staying returns a pod whose member answers and stays: the leader's if it
// stays, else the first.
func (st state) staying(t plugins.Target, ordinal int) (*corev1.Pod, error) {
	var first *corev1.Pod
	for _, p := range t.PodsExcept(ordinal) {
		id, ok := st.cluster.MemberOfPod[p.Name]
		v, answered := st.views[p.Name]
		if !ok || !answered || v.Self.Status.Header.MemberID != id {
			continue
		}
		if id == st.cluster.Leader {
			return p, nil
		}
		if first == nil {
			first = p
		}
	}
	if first == nil {
		return nil, fmt.Errorf("no member that stays answers: %s", plugins.Unanswered(st.members))
	}
	return first, nil
}

// successor picks the staying voter furthest ahead to take the lead.
func (st state) successor(ordinal int) (uint64, bool) {
	var best uint64
	var bestIndex uint64
	found := false
	for _, pod := range slices.Sorted(maps.Keys(st.views)) {
		if st.pods[pod] == ordinal {
			continue
		}
		v := st.views[pod]
		id := v.Self.Status.Header.MemberID
		if st.cluster.MemberOfPod[pod] != id || v.Self.Status.IsLearner {
			continue
		}
		if !found || v.Self.Status.RaftAppliedIndex > bestIndex {
			best, bestIndex, found = id, v.Self.Status.RaftAppliedIndex, true
		}
	}
	return best, found
}

// settle waits until every staying member that answers reports a
// membership without removed (0: none in particular) and the same leader,
// itself a member.
func (e *Engine) settle(ctx context.Context, t plugins.Target, ordinal int, removed uint64, opts plugins.RemoveOptions) error {
	stay := t
	stay.Pods = t.PodsExcept(ordinal)
	var last state
	err := plugins.Settle(ctx, removeWait(opts), e.interval(), func(ctx context.Context) (string, error) {
		st, err := e.read(ctx, stay)
		last = st
		return st.unsettled(removed), err
	}, func(why string) {
		opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionWaiting, Object: "membership",
			Message: "waiting for the members that stay to agree on the membership and the leader: " + why})
	})
	if err != nil {
		return fmt.Errorf("the etcd members that stay: %w", err)
	}
	opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionChecked, Object: "membership",
		Message: fmt.Sprintf("the %d members that stay agree on the membership and on leader %s (%s)",
			len(last.views), HexID(last.cluster.Leader), last.cluster.PodOfMember[last.cluster.Leader])})
	return nil
}

// unsettled says why the staying members do not agree yet, or "".
func (st state) unsettled(removed uint64) string {
	if len(st.views) == 0 {
		return "no member answers"
	}
	var leader uint64
	for _, pod := range slices.Sorted(maps.Keys(st.views)) {
		v := st.views[pod]
		// A learner lists no membership (its etcd refuses): the leader it
		// follows is checked against the voters' membership.
		members := v.Members
		if len(members) == 0 && v.Self.Status.IsLearner {
			members = st.cluster.Membership
		}
		if removed != 0 {
			if _, still := memberByID(members, removed); still {
				return fmt.Sprintf("%s still lists member %s", pod, HexID(removed))
			}
		}
		l := v.Self.Status.Leader
		switch {
		case l == 0:
			return pod + " has no leader"
		case leader != 0 && l != leader:
			return fmt.Sprintf("%s follows %s, others %s", pod, HexID(l), HexID(leader))
		}
		leader = l
		if _, ok := memberByID(members, l); !ok {
			return fmt.Sprintf("%s follows %s, which is not a member", pod, HexID(l))
		}
	}
	return ""
}

// AfterRemove implements plugins.Engine. The member normally left the
// membership in BeforeRemove; if the pod went first (--engine none, or a
// run interrupted in between), its member is still a voter that will never
// answer: it is removed now, with the same quorum check.
func (e *Engine) AfterRemove(ctx context.Context, t plugins.Target, ordinal int, opts plugins.RemoveOptions) error {
	pod := t.PodName(ordinal)
	st, err := e.read(ctx, t)
	if err != nil {
		return err
	}
	var left *MemberInfo
	for _, m := range st.cluster.WithoutPod {
		if m.Name == pod || PodOf(m, nil, map[string]int{pod: ordinal}) == pod {
			left = &m
			break
		}
	}
	if left == nil && len(st.cluster.WithoutPod) > 0 {
		// Members named unlike their pods: the removed pod's may be among
		// them, but nothing tells which.
		var others []string
		for _, m := range st.cluster.WithoutPod {
			others = append(others, describe(m))
		}
		opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionWarning, Object: "membership",
			Message: fmt.Sprintf("no member is named like %s, but the membership lists members no pod runs: %s; if one of them was %s's, it is a voter that will never answer: remove it with etcdctl member remove <id>",
				pod, strings.Join(others, "; "), pod)})
		return nil
	}
	if left == nil {
		opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionSkipped, Object: "membership",
			Message: fmt.Sprintf("no member of %s is left in the etcd membership", pod)})
		return nil
	}
	mship, err := st.membership()
	if err != nil {
		return err
	}
	// The dead voter is already unhealthy: removing it lowers the quorum.
	n := len(mship.Voters)
	if h := len(mship.Healthy()); h < plugins.Quorum(n-1) {
		return fmt.Errorf("member %s of the removed pod %s is still a voter, and only %d of the %d voters answer: below the quorum of %d even without it; restore the lost members first",
			HexID(left.ID), pod, h, n, plugins.Quorum(n-1))
	}
	runner, err := st.staying(t, ordinal)
	if err != nil {
		return err
	}
	id := HexID(left.ID)
	if opts.DryRun {
		opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionChanged, Pod: runner.Name, Object: "member " + id,
			Message: fmt.Sprintf("would remove member %s of the removed pod %s, a dead voter, from the etcd membership", id, pod)})
		return nil
	}
	err = e.retry(ctx, removeWait(opts), func(err error) {
		opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionWaiting, Pod: runner.Name, Object: "member " + id,
			Message: "etcd does not accept the removal yet, retrying: " + err.Error()})
	}, func() error {
		_, err := e.ctl(ctx, t, runner, "member", "remove", id)
		return err
	})
	if err != nil {
		return fmt.Errorf("removing member %s of the removed pod %s: %w", id, pod, err)
	}
	opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionChanged, Pod: runner.Name, Object: "member " + id,
		Message: fmt.Sprintf("removed member %s of the removed pod %s, a dead voter, from the etcd membership", id, pod)})
	return e.settle(ctx, t, ordinal, left.ID, opts)
}
