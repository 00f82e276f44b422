package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-sts/kubectl-sts/plugins"
)

var _ plugins.LeftoverCleaner = (*Engine)(nil)

// slotsView is what the cleanup of leftover slots knows of the members
// that remain: the primary's slots and which slot each member streams
// from.
type slotsView struct {
	primary string
	slots   []slot
	inUse   map[string]string
	// silent names a member that did not answer: which slot it uses is
	// unknown, so nothing is dropped.
	silent string
}

func (e *Engine) readSlots(ctx context.Context, t plugins.Target) (slotsView, error) {
	members, views, err := e.read(ctx, t)
	if err != nil {
		return slotsView{}, err
	}
	primaries := plugins.Primaries(members)
	if len(primaries) != 1 {
		why := plugins.PrimaryReason(members)
		if u := plugins.Unanswered(members); u != "" {
			why += "; " + u
		}
		return slotsView{}, fmt.Errorf("cannot tell which member holds the replication slots: %s", why)
	}
	sv := slotsView{primary: primaries[0].Pod, slots: views[primaries[0].Pod].Slots, inUse: map[string]string{}}
	for pod, v := range views {
		if v.Receiver != nil && v.Receiver.SlotName != nil && *v.Receiver.SlotName != "" {
			sv.inUse[*v.Receiver.SlotName] = pod
		}
	}
	for _, m := range members {
		if m.Error != "" {
			sv.silent = m.Pod
			break
		}
	}
	return sv, nil
}

// Leftovers implements plugins.LeftoverCleaner: the primary's slots named
// for ordinals outside the desired range (by the conventions of
// SlotOrdinal: pg_2, slot_pg_2, _cnpg_pg_2, standby_pg_2, repmgr), and the
// slots named in opts.Names. A slot is dropped only when it is inactive,
// no remaining member streams from it, no pod of its ordinal exists, and
// it is physical or named explicitly; every other one is listed with the
// reason it stays.
func (e *Engine) Leftovers(ctx context.Context, t plugins.Target, opts plugins.LeftoverOptions) ([]plugins.Leftover, error) {
	for _, n := range opts.Names {
		if err := ValidateSlotName(n); err != nil {
			return nil, fmt.Errorf("--slot: %w", err)
		}
	}
	if t.StatefulSet == nil {
		return nil, fmt.Errorf("no StatefulSet given")
	}
	sv, err := e.readSlots(ctx, t)
	if err != nil {
		return nil, err
	}
	var out []plugins.Leftover
	seen := map[string]bool{}
	for _, s := range sv.slots {
		l, ok := judgeLeftover(t, sv, s, opts)
		if ok {
			seen[s.Name] = true
			out = append(out, l)
		}
	}
	for _, n := range opts.Names {
		if !seen[n] {
			seen[n] = true
			out = append(out, plugins.Leftover{Kind: plugins.LeftoverSlot, Name: n, On: sv.primary, Explicit: true,
				Reason: fmt.Sprintf("no replication slot %s on %s (already dropped)", n, sv.primary)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// judgeLeftover decides about one slot of the primary; ok is false for a
// slot that is no removed member's and was not named.
func judgeLeftover(t plugins.Target, sv slotsView, s slot, opts plugins.LeftoverOptions) (plugins.Leftover, bool) {
	explicit := contains(opts.Names, s.Name)
	o, named := SlotOrdinal(t.StatefulSet.Name, s.Name)
	removed := named && !opts.Desired(o)
	if !explicit && !removed {
		return plugins.Leftover{}, false
	}
	l := plugins.Leftover{Kind: plugins.LeftoverSlot, Name: s.Name, On: sv.primary, Type: s.Type, Active: s.Active, Explicit: explicit}
	if named {
		l.Ordinal = plugins.Int(o)
	}
	if n, err := s.RetainedBytes.Int64(); err == nil {
		l.RetainedBytes = plugins.Int64(n)
	}
	switch {
	case sv.inUse[s.Name] != "":
		l.Reason = fmt.Sprintf("pod %s streams from it", sv.inUse[s.Name])
	case s.Active:
		holder := ""
		if s.ActivePID != nil {
			holder = fmt.Sprintf(" (pid %d)", *s.ActivePID)
		}
		l.Reason = fmt.Sprintf("it is active%s: something still streams from it", holder)
	case sv.silent != "":
		l.Reason = fmt.Sprintf("pod %s did not answer, so which slot it streams from is unknown", sv.silent)
	case named && opts.Desired(o):
		l.Reason = fmt.Sprintf("it is named for %s, which is a member", t.PodName(o))
	case named && t.Pod(o) != nil:
		l.Reason = fmt.Sprintf("pod %s exists", t.PodName(o))
	case s.Type != "physical" && !explicit:
		l.Reason = fmt.Sprintf("it is a %s slot, not a replica's: name it with --slot %s to drop it", orUnknownType(s.Type), s.Name)
	default:
		l.Drop = true
		if named && !explicit {
			l.Reason = fmt.Sprintf("inactive, named for ordinal %d, which is not a member", o)
		} else {
			l.Reason = "inactive, named with --slot, used by no member"
		}
	}
	return l, true
}

func orUnknownType(s string) string {
	if s == "" {
		return "an unknown kind of"
	}
	return s
}

// DropLeftover implements plugins.LeftoverCleaner.
func (e *Engine) DropLeftover(ctx context.Context, t plugins.Target, l plugins.Leftover, opts plugins.LeftoverOptions, events plugins.RemoveOptions) error {
	if l.Kind != plugins.LeftoverSlot {
		return fmt.Errorf("postgres keeps no %s", l.Kind)
	}
	if err := ValidateSlotName(l.Name); err != nil {
		return err
	}
	ordinal := -1
	if l.Ordinal != nil {
		ordinal = *l.Ordinal
	}
	emit := func(action plugins.RemoveAction, pod, msg string) {
		events.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: action, Pod: pod, Object: "slot " + l.Name, Message: msg})
	}
	// Judge it again on what the members say now.
	sv, err := e.readSlots(ctx, t)
	if err != nil {
		return fmt.Errorf("not dropping replication slot %s: %w", l.Name, err)
	}
	if sv.primary != l.On {
		return fmt.Errorf("not dropping replication slot %s: the primary is now %s, not %s; run the cleanup again", l.Name, sv.primary, l.On)
	}
	var cur *slot
	for i := range sv.slots {
		if sv.slots[i].Name == l.Name {
			cur = &sv.slots[i]
		}
	}
	if cur == nil {
		emit(plugins.ActionSkipped, sv.primary, fmt.Sprintf("replication slot %s on %s is already gone", l.Name, sv.primary))
		return nil
	}
	if l.Explicit && !contains(opts.Names, l.Name) {
		opts.Names = append(opts.Names, l.Name)
	}
	now, _ := judgeLeftover(t, sv, *cur, opts)
	if !now.Drop {
		return fmt.Errorf("not dropping replication slot %s on %s: %s", l.Name, sv.primary, now.Reason)
	}
	if events.DryRun {
		emit(plugins.ActionChanged, sv.primary, fmt.Sprintf("would drop replication slot %s on %s", l.Name, sv.primary))
		return nil
	}
	primary := podNamed(t, sv.primary)
	if primary == nil {
		return fmt.Errorf("not dropping replication slot %s: pod %s is gone", l.Name, sv.primary)
	}
	container := t.ContainerFor(primary, e.Matches)
	for attempt := 1; ; attempt++ {
		out, err := t.Run(ctx, primary, container, "psql", psqlCommand(dropSlotSQL(l.Name)))
		if err == nil && strings.TrimSpace(string(out)) == "1" {
			msg := fmt.Sprintf("dropped replication slot %s on %s", l.Name, sv.primary)
			if l.RetainedBytes != nil {
				msg += fmt.Sprintf(" (it retained %s of WAL)", plugins.Bytes(*l.RetainedBytes))
			}
			emit(plugins.ActionChanged, sv.primary, msg)
			return nil
		}
		var ce *plugins.CommandError
		if errors.As(err, &ce) && strings.Contains(ce.Stderr, "is active for PID") {
			return fmt.Errorf("replication slot %s on %s became active while it was being dropped: something streams from it again; it was not dropped", l.Name, sv.primary)
		} else if err != nil {
			return fmt.Errorf("dropping replication slot %s on %s: %w", l.Name, sv.primary, err)
		}
		out, err = t.Run(ctx, primary, container, "psql", psqlCommand(slotStateSQL(l.Name)))
		if err != nil {
			return fmt.Errorf("reading replication slot %s on %s: %w", l.Name, sv.primary, err)
		}
		var st slotState
		if err := json.Unmarshal([]byte(strings.TrimSpace(string(out))), &st); err != nil {
			return fmt.Errorf("reading replication slot %s on %s: cannot parse %q: %w", l.Name, sv.primary, out, err)
		}
		switch {
		case !st.Exists:
			emit(plugins.ActionSkipped, sv.primary, fmt.Sprintf("replication slot %s on %s is already gone", l.Name, sv.primary))
			return nil
		case st.Active:
			return fmt.Errorf("replication slot %s on %s became active: something streams from it again; it was not dropped", l.Name, sv.primary)
		case attempt > maxInactiveRetries:
			return fmt.Errorf("replication slot %s on %s is inactive but was not dropped after %d attempts", l.Name, sv.primary, attempt)
		}
	}
}

// podNamed returns t's pod named name, or nil.
func podNamed(t plugins.Target, name string) *corev1.Pod {
	for _, p := range t.Pods {
		if p.Name == name {
			return p
		}
	}
	return nil
}
