// Package postgres is the PostgreSQL engine: roles from
// pg_is_in_recovery(), replicas and their lag from pg_stat_replication on
// the primary and the WAL receiver on each replica, replication slots with
// the WAL they retain, and, on scale-down, dropping the removed member's
// slot once it is inactive.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	kwait "github.com/kubectl-sts/kubectl-sts/pkg/wait"
	"github.com/kubectl-sts/kubectl-sts/plugins"
)

// Name is the engine's --engine value.
const Name = "postgres"

// Defaults of the scale-down steps.
const (
	// DefaultSlotWait covers wal_sender_timeout (60s by default): how long
	// the primary may keep a vanished replica's connection, and its slot,
	// active.
	DefaultSlotWait = 2 * time.Minute
	slotPoll        = time.Second
	// maxInactiveRetries bounds the drops retried at once when a slot is
	// found inactive right after a drop that found it active; a drop of an
	// inactive slot that keeps dropping nothing is an error, not a wait.
	maxInactiveRetries = 3
)

// Engine is the PostgreSQL engine.
type Engine struct {
	// Interval is how often the slot wait asks again (zero: every
	// second).
	Interval time.Duration
}

// New returns the engine.
func New() *Engine { return &Engine{} }

var _ plugins.Engine = (*Engine)(nil)

// Name implements plugins.Engine.
func (e *Engine) Name() string { return Name }

// LagUnits implements plugins.LagMeasurer: WAL positions and replay lag: both.
func (e *Engine) LagUnits() plugins.LagUnits { return plugins.LagUnits{Bytes: true, Seconds: true} }

// Aliases implements plugins.Aliased.
func (e *Engine) Aliases() []string { return []string{"postgresql", "pg"} }

// Matches implements plugins.Engine: postgres, postgresql (Bitnami,
// CloudNativePG), postgis, timescaledb and spilo (Patroni) images.
func (e *Engine) Matches(image string) bool {
	return plugins.MatchImage(image, "postgres", "postgresql", "postgis", "timescaledb", "spilo", "patroni")
}

// view is one server's answer to membersSQL.
type view struct {
	Recovery    bool      `json:"recovery"`
	Version     int       `json:"version"`
	LSN         string    `json:"lsn"`
	ReceiveLSN  *string   `json:"receiveLsn"`
	ReplayLSN   *string   `json:"replayLsn"`
	ReplayDelay *float64  `json:"replayDelay"`
	ReplayAge   *float64  `json:"replayAge"`
	ReplayPause *bool     `json:"replayPaused"`
	Receiver    *receiver `json:"receiver"`
	Replication []replica `json:"replication"`
	Slots       []slot    `json:"slots"`
}

type receiver struct {
	Status     string  `json:"status"`
	SlotName   *string `json:"slotName"`
	SenderHost *string `json:"senderHost"`
	SenderPort *string `json:"senderPort"`
}

type replica struct {
	PID             int         `json:"pid"`
	ApplicationName string      `json:"applicationName"`
	ClientAddr      *string     `json:"clientAddr"`
	State           string      `json:"state"`
	SentLSN         *string     `json:"sentLsn"`
	WriteLSN        *string     `json:"writeLsn"`
	FlushLSN        *string     `json:"flushLsn"`
	ReplayLSN       *string     `json:"replayLsn"`
	WriteLag        *float64    `json:"writeLag"`
	FlushLag        *float64    `json:"flushLag"`
	ReplayLag       *float64    `json:"replayLag"`
	SyncState       string      `json:"syncState"`
	LagBytes        json.Number `json:"lagBytes"`
}

type slot struct {
	Name          string      `json:"name"`
	Type          string      `json:"type"`
	Active        bool        `json:"active"`
	ActivePID     *int        `json:"activePid"`
	RestartLSN    *string     `json:"restartLsn"`
	WALStatus     *string     `json:"walStatus"`
	RetainedBytes json.Number `json:"retainedBytes"`
}

func parseView(out []byte) (view, error) {
	var v view
	text := strings.TrimSpace(string(out))
	if text == "" {
		return v, fmt.Errorf("psql printed nothing")
	}
	if err := json.Unmarshal([]byte(text), &v); err != nil {
		return v, fmt.Errorf("cannot parse psql output: %w", err)
	}
	return v, nil
}

// read asks every pod of t for its view, in parallel.
func (e *Engine) read(ctx context.Context, t plugins.Target) ([]plugins.Member, map[string]view, error) {
	members, views, err := plugins.QueryViews(ctx, t, plugins.RunParsed(t, e.Matches, "psql", psqlCommand(membersSQL), parseView))
	ips := map[string]string{}
	for _, p := range t.Pods {
		ips[p.Name] = p.Status.PodIP
	}
	assemble(members, views, ips)
	return members, views, err
}

// Members implements plugins.Engine.
func (e *Engine) Members(ctx context.Context, t plugins.Target) ([]plugins.Member, error) {
	members, _, err := e.read(ctx, t)
	return members, err
}

// assemble fills the members from the views: each replica's lag comes from
// the primary's pg_stat_replication row for it when one matches, else from
// the two servers' positions.
func assemble(members []plugins.Member, views map[string]view, podIPs map[string]string) {
	var primary *view
	primaryPod := ""
	for i := range members {
		v, ok := views[members[i].Pod]
		if !ok {
			continue
		}
		if !v.Recovery {
			if primary == nil {
				primary, primaryPod = &v, members[i].Pod
			}
			members[i].Role = plugins.RolePrimary
		} else {
			members[i].Role = plugins.RoleReplica
		}
	}
	matched := map[rowKey]bool{}
	defer anonymousStandbys(members, views, matched)
	for i := range members {
		m := &members[i]
		v, ok := views[m.Pod]
		if !ok {
			continue
		}
		m.Details = map[string]string{"serverVersion": strconv.Itoa(v.Version)}
		m.Slots = toSlots(v.Slots)
		if m.Role == plugins.RolePrimary {
			m.State = "read-write"
			m.Details["currentLsn"] = v.LSN
			streaming := 0
			for _, r := range v.Replication {
				if r.State == "streaming" {
					streaming++
				}
			}
			m.Details["replicas"] = fmt.Sprintf("%d connected, %d streaming", len(v.Replication), streaming)
			m.Details["connectedReplicas"] = strconv.Itoa(len(v.Replication))
			continue
		}
		if v.ReplayPause != nil && *v.ReplayPause {
			m.Details["replayPaused"] = "true"
		}
		setIf(m.Details, "receiveLsn", v.ReceiveLSN)
		setIf(m.Details, "replayLsn", v.ReplayLSN)
		m.State = "recovering"
		if v.Receiver != nil {
			m.State = v.Receiver.Status
			setIf(m.Details, "slot", v.Receiver.SlotName)
			if v.Receiver.SenderHost != nil {
				m.Details["sender"] = *v.Receiver.SenderHost
				if v.Receiver.SenderPort != nil {
					m.Details["sender"] += ":" + *v.Receiver.SenderPort
				}
			}
		}
		m.LagSeconds = v.ReplayDelay
		if primary == nil {
			continue
		}
		if r := matchReplica(m.Pod, v, *primary, podIPs[m.Pod]); r != nil {
			matched[rowKey{primaryPod, r.PID}] = true
			m.State = r.State
			m.Details["syncState"] = r.SyncState
			m.Details["applicationName"] = r.ApplicationName
			if n, err := r.LagBytes.Int64(); err == nil {
				m.LagBytes = plugins.Int64(max(n, 0))
			}
			if r.ReplayLag != nil {
				m.LagSeconds = r.ReplayLag
			}
		} else {
			if up, r := upstream(m.Pod, v, members, views, podIPs); r != nil {
				// Cascading: it streams from another replica.
				matched[rowKey{up, r.PID}] = true
				m.State = r.State
				m.Details["upstream"] = up
			} else if m.State == "streaming" {
				// Its receiver streams, but no member has it as a
				// standby: it follows a server outside the set.
				m.State = StateStreamingElsewhere
				sender := m.Details["sender"]
				if sender == "" {
					sender = "a server outside the set"
				}
				m.Details["streamsElsewhere"] = fmt.Sprintf("replica %s streams from %s, not from the primary %s: no member lists it as a standby", m.Pod, sender, primaryPod)
			}
			if v.ReplayLSN != nil {
				// Not streaming from the primary (or not recognisable): the
				// distance between the two servers' positions.
				if p, err1 := ParseLSN(primary.LSN); err1 == nil {
					if r, err2 := ParseLSN(*v.ReplayLSN); err2 == nil {
						m.LagBytes = plugins.Int64(max(int64(p)-int64(r), 0))
					}
				}
			}
		}
		m.LagSeconds = lagSeconds(m, v, *primary)
	}
}

// lagSeconds judges a replica's lag in seconds against the primary's
// current position: a replica that replayed everything the primary has is
// not behind, however long ago its last replayed commit was (an idle
// primary writes none). Otherwise the primary's measured replay_lag
// stands; without it, the replica is as far behind as its last replayed
// commit is old.
func lagSeconds(m *plugins.Member, v view, primary view) *float64 {
	if caughtUp(v, primary) || (m.LagBytes != nil && *m.LagBytes == 0) {
		return plugins.Float64(0)
	}
	if m.LagSeconds != nil && *m.LagSeconds > 0 {
		return m.LagSeconds
	}
	// Behind the primary, with no measured lag, yet replayed all it
	// received: the age of its last replayed commit is the honest bound.
	if v.ReplayAge != nil {
		return v.ReplayAge
	}
	return m.LagSeconds
}

// caughtUp reports whether the replica's replay position has reached the
// primary's current position.
func caughtUp(v view, primary view) bool {
	if v.ReplayLSN == nil {
		return false
	}
	p, err1 := ParseLSN(primary.LSN)
	r, err2 := ParseLSN(*v.ReplayLSN)
	return err1 == nil && err2 == nil && r >= p
}

// StateStreamingElsewhere is a replica whose WAL receiver streams while no
// member of the set lists it as a standby: it follows a server outside
// the StatefulSet (an old primary after a failover, a stray
// primary_conninfo), so it does not replicate the primary at all.
const StateStreamingElsewhere = "streaming elsewhere"

// rowKey is one pg_stat_replication row: the member that lists it and
// the walsender's pid.
type rowKey struct {
	pod string
	pid int
}

// anonymousStandbys takes back a "streaming elsewhere" verdict while some
// member lists a standby that no replica was matched to (a proxy or NAT
// hides the client address, the application name is a default): the
// replica may be that standby, so its own receiver's word stands.
func anonymousStandbys(members []plugins.Member, views map[string]view, matched map[rowKey]bool) {
	anonymous := false
	for pod, v := range views {
		for _, r := range v.Replication {
			if !matched[rowKey{pod, r.PID}] {
				anonymous = true
			}
		}
	}
	if !anonymous {
		return
	}
	for i := range members {
		if members[i].State == StateStreamingElsewhere {
			members[i].State = "streaming"
			delete(members[i].Details, "streamsElsewhere")
		}
	}
}

// upstream finds a replica that lists pod as its standby (cascading
// replication) and its row; "" and nil when none does.
func upstream(pod string, v view, members []plugins.Member, views map[string]view, podIPs map[string]string) (string, *replica) {
	for _, m := range members {
		uv, ok := views[m.Pod]
		if !ok || m.Pod == pod || !uv.Recovery {
			continue
		}
		if r := matchReplica(pod, v, uv, podIPs[pod]); r != nil {
			return m.Pod, r
		}
	}
	return "", nil
}

// matchReplica finds the primary's pg_stat_replication row of a replica:
// by application_name (Patroni and most operators set the member name),
// by the slot the replica streams from, or by the pod's IP address.
func matchReplica(pod string, v view, primary view, podIP string) *replica {
	for i, r := range primary.Replication {
		if r.ApplicationName == pod || r.ApplicationName == SlotNameFromMember(pod) {
			return &primary.Replication[i]
		}
	}
	if v.Receiver != nil && v.Receiver.SlotName != nil && *v.Receiver.SlotName != "" {
		for _, s := range primary.Slots {
			if s.Name != *v.Receiver.SlotName || s.ActivePID == nil {
				continue
			}
			for i, r := range primary.Replication {
				if r.PID == *s.ActivePID {
					return &primary.Replication[i]
				}
			}
		}
	}
	if podIP != "" {
		for i, r := range primary.Replication {
			if r.ClientAddr != nil && *r.ClientAddr == podIP {
				return &primary.Replication[i]
			}
		}
	}
	return nil
}

func toSlots(in []slot) []plugins.Slot {
	var out []plugins.Slot
	for _, s := range in {
		ps := plugins.Slot{Name: s.Name, Type: s.Type, Active: s.Active}
		if n, err := s.RetainedBytes.Int64(); err == nil {
			ps.RetainedBytes = plugins.Int64(n)
		}
		if s.WALStatus != nil {
			ps.WALStatus = *s.WALStatus
		}
		out = append(out, ps)
	}
	return out
}

func setIf(m map[string]string, k string, v *string) {
	if v != nil && *v != "" {
		m[k] = *v
	}
}

// ParseLSN parses a WAL position printed as "X/Y" (two hex halves).
func ParseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("invalid LSN %q", s)
	}
	h, err := strconv.ParseUint(hi, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("invalid LSN %q", s)
	}
	l, err := strconv.ParseUint(lo, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("invalid LSN %q", s)
	}
	return h<<32 | l, nil
}

// Healthy implements plugins.Engine: every member answered, exactly one
// primary, every replica streaming, lag within the bounds.
func (e *Engine) Healthy(members []plugins.Member, opts plugins.HealthOptions) (bool, string) {
	if r := plugins.ReplicationReason(members); r != "" {
		return false, r
	}
	var problems plugins.Problems
	problems.AddReplicas(members, opts, streamsNothing, notStreaming)
	return problems.Verdict()
}

// streamsNothing: a member in neither role has no replication to judge.
func streamsNothing(plugins.Member) string { return "" }

// notStreaming says that replica m's WAL receiver does not stream; ""
// when it does.
func notStreaming(m plugins.Member) string {
	if m.State == "streaming" {
		return ""
	}
	if w := m.Details["streamsElsewhere"]; w != "" {
		return w
	}
	return fmt.Sprintf("%s is %s, not streaming", m.Pod, orUnknown(m.State))
}

func orUnknown(s string) string {
	if s == "" {
		return "in an unknown state"
	}
	return s
}

// BeforeRemove implements plugins.Engine: it refuses to remove the
// primary, and warns when the member streams from a slot that AfterRemove
// would not drop.
func (e *Engine) BeforeRemove(ctx context.Context, t plugins.Target, ordinal int, opts plugins.RemoveOptions) error {
	names, explicit, err := slotNames(t, ordinal, opts)
	if err != nil {
		return err
	}
	members, views, err := e.read(ctx, t)
	if err != nil {
		return err
	}
	if err := plugins.RefusePrimary(members, ordinal); err != nil {
		return err
	}
	pod := t.PodName(ordinal)
	_, ok := plugins.FindMember(members, ordinal)
	if !ok {
		opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionSkipped, Message: fmt.Sprintf("pod %s does not exist", pod)})
		return nil
	}
	msg := plugins.NotPrimaryMessage(members, ordinal)
	opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionChecked, Pod: pod, Message: msg})
	if v, ok := views[pod]; ok && v.Receiver != nil && v.Receiver.SlotName != nil && *v.Receiver.SlotName != "" {
		used := *v.Receiver.SlotName
		if !contains(names, used) {
			how := "is not among the slot names kubectl-sts derives for it (" + strings.Join(names, ", ") + ")"
			if explicit {
				how = "is not among the --slot-name values"
			}
			opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionWarning, Pod: pod, Object: "slot " + used,
				Message: fmt.Sprintf("pod %s streams from slot %s, which %s: it will not be dropped; pass --slot-name %s to drop it", pod, used, how, used)})
		}
	}
	if _, answered := views[pod]; !answered && !explicit {
		unreadSlot(members, views, pod, ordinal, names, opts)
	}
	return nil
}

// unreadSlot warns, for a pod whose server does not answer, so that the
// slot it streamed from cannot be read, when no slot on the primary is
// named for it by the conventions but some inactive physical slots are
// streamed from by no member: one of them may be its, and it would be
// left retaining WAL without a word.
func unreadSlot(members []plugins.Member, views map[string]view, pod string, ordinal int, names []string, opts plugins.RemoveOptions) {
	primaries := plugins.Primaries(members)
	if len(primaries) != 1 {
		return
	}
	pv := views[primaries[0].Pod]
	inUse := map[string]bool{}
	for _, v := range views {
		if v.Receiver != nil && v.Receiver.SlotName != nil {
			inUse[*v.Receiver.SlotName] = true
		}
	}
	var candidates []string
	for _, sl := range pv.Slots {
		if contains(names, sl.Name) {
			return // the convention names its slot
		}
		if sl.Type == "physical" && !sl.Active && !inUse[sl.Name] {
			c := sl.Name
			if b, err := sl.RetainedBytes.Int64(); err == nil {
				c += fmt.Sprintf(" (retaining %s of WAL)", plugins.Bytes(b))
			}
			candidates = append(candidates, c)
		}
	}
	if len(candidates) == 0 {
		return
	}
	opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionWarning, Pod: primaries[0].Pod, Object: "slots",
		Message: fmt.Sprintf("%s does not answer, so the slot it streams from cannot be read, and no slot on %s is named for it (%s); inactive physical slots no member streams from: %s; if one is %s's, pass --slot-name to drop it, or it stays retaining WAL",
			pod, primaries[0].Pod, strings.Join(names, ", "), strings.Join(candidates, ", "), pod)})
}

// slotNames returns the slots AfterRemove considers for ordinal, validated.
func slotNames(t plugins.Target, ordinal int, opts plugins.RemoveOptions) (names []string, explicit bool, err error) {
	if len(opts.SlotNames) > 0 {
		for _, n := range opts.SlotNames {
			if err := ValidateSlotName(n); err != nil {
				return nil, true, fmt.Errorf("--slot-name: %w", err)
			}
		}
		return opts.SlotNames, true, nil
	}
	if t.StatefulSet == nil {
		return nil, false, fmt.Errorf("no StatefulSet given")
	}
	return SlotCandidates(t.StatefulSet.Name, ordinal), false, nil
}

// AfterRemove implements plugins.Engine: on the primary, it drops the
// removed member's replication slot (by the naming conventions, or
// RemoveOptions.SlotNames) once it is inactive, waiting up to opts.Wait
// (DefaultSlotWait) for it to become so. An active slot is never dropped;
// a slot that is already gone is success; a slot that a remaining replica
// streams from is never dropped.
func (e *Engine) AfterRemove(ctx context.Context, t plugins.Target, ordinal int, opts plugins.RemoveOptions) error {
	names, explicit, err := slotNames(t, ordinal, opts)
	if err != nil {
		return err
	}
	rest := t
	rest.Pods = t.PodsExcept(ordinal)
	members, views, err := e.read(ctx, rest)
	if err != nil {
		return err
	}
	primaries := plugins.Primaries(members)
	if len(primaries) != 1 {
		why := plugins.PrimaryReason(members)
		if u := plugins.Unanswered(members); u != "" {
			why += "; " + u
		}
		return fmt.Errorf("cannot drop the replication slot of ordinal %d: %s", ordinal, why)
	}
	primary := t.Pod(primaries[0].Ordinal)
	pv := views[primary.Name]
	inUse := map[string]string{}
	for pod, v := range views {
		if v.Receiver != nil && v.Receiver.SlotName != nil {
			inUse[*v.Receiver.SlotName] = pod
		}
	}
	existing := map[string]slot{}
	for _, s := range pv.Slots {
		existing[s.Name] = s
	}

	leftovers(t, ordinal, names, pv.Slots, inUse, primary.Name, opts)
	var drop []string
	for _, n := range names {
		s, ok := existing[n]
		switch {
		case !ok:
			if explicit {
				opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionSkipped, Pod: primary.Name, Object: "slot " + n,
					Message: fmt.Sprintf("slot %s does not exist on %s (already dropped)", n, primary.Name)})
			}
		case inUse[n] != "":
			if explicit {
				return fmt.Errorf("slot %s is used by pod %s, which stays: not dropping it (check --slot-name)", n, inUse[n])
			}
			opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionWarning, Pod: primary.Name, Object: "slot " + n,
				Message: fmt.Sprintf("slot %s is used by pod %s, which stays: not dropping it", n, inUse[n])})
		case s.Type != "physical" && !explicit:
			opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionWarning, Pod: primary.Name, Object: "slot " + n, Left: true,
				Message: fmt.Sprintf("slot %s is a %s slot, not a replica's: not dropping it (name it with --slot-name to drop it)", n, s.Type)})
		default:
			drop = append(drop, n)
		}
	}
	if len(drop) == 0 {
		if !explicit {
			opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionSkipped, Pod: primary.Name,
				Message: fmt.Sprintf("no replication slot of %s on %s (looked for %s)", t.PodName(ordinal), primary.Name, strings.Join(names, ", "))})
		}
		return nil
	}
	if opts.DryRun {
		for _, n := range drop {
			s := existing[n]
			state := "inactive"
			if s.Active {
				state = "active: it will wait for it to go inactive"
			}
			msg := fmt.Sprintf("would drop replication slot %s on %s (%s", n, primary.Name, state)
			if b, err := s.RetainedBytes.Int64(); err == nil {
				msg += fmt.Sprintf(", retaining %d bytes of WAL", b)
			}
			opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionChanged, Pod: primary.Name, Object: "slot " + n, Message: msg + ")"})
		}
		return nil
	}
	wait := opts.Wait
	if wait <= 0 {
		wait = DefaultSlotWait
	}
	for _, n := range drop {
		if err := e.dropWhenInactive(ctx, t, primary, ordinal, n, wait, opts); err != nil {
			return err
		}
	}
	return nil
}

// leftovers reports, as Left warnings, the slots on the primary named for
// the removed ordinal that the step does not consider (e.g. standby_pg_2),
// so the summary lists them and nothing is left silently.
func leftovers(t plugins.Target, ordinal int, names []string, slots []slot, inUse map[string]string, primary string, opts plugins.RemoveOptions) {
	if t.StatefulSet == nil {
		return
	}
	for _, s := range slots {
		o, ok := SlotOrdinal(t.StatefulSet.Name, s.Name)
		if !ok || o != ordinal || contains(names, s.Name) || inUse[s.Name] != "" {
			continue
		}
		msg := fmt.Sprintf("replication slot %s on %s is named for the removed ordinal %d but is not among the slots this step drops (%s): it is left",
			s.Name, primary, ordinal, strings.Join(names, ", "))
		if b, err := s.RetainedBytes.Int64(); err == nil {
			msg += fmt.Sprintf(", retaining %s of WAL", plugins.Bytes(b))
		}
		opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionWarning, Pod: primary, Object: "slot " + s.Name, Left: true,
			Message: msg + "; status names it (LeftoverSlot) until it is dropped"})
	}
}

type slotState struct {
	Exists    bool `json:"exists"`
	Active    bool `json:"active"`
	ActivePID *int `json:"activePid"`
}

// dropWhenInactive drops slot name on the primary, retrying while it is
// active, until it is dropped, gone, or wait has passed. The retries are
// a wait.Waiter poll: the wait layer's interval, timeout and errors.
func (e *Engine) dropWhenInactive(ctx context.Context, t plugins.Target, primary *corev1.Pod, ordinal int, name string, wait time.Duration, opts plugins.RemoveOptions) error {
	container := t.ContainerFor(primary, e.Matches)
	object := "slot " + name
	waiting := false
	holder := ""
	inactiveRetries := 0
	var stop error        // the reason the wait ended, when it is not the wait's own
	var unreachable error // the last command's failure to reach psql, until one answers
	// cutShort tells whether the wait's own deadline ended a command: a
	// dial's socket deadline can fire a moment before the context's timer.
	cutShort := func(ctx context.Context) bool {
		dl, ok := ctx.Deadline()
		return ctx.Err() != nil || (ok && !time.Now().Before(dl))
	}
	// noAnswer tells whether err is a command that never got psql's answer
	// (the exec stream failed, or psql did not finish in time): no news about
	// the slot, so the wait asks again on its next tick. psql's own failure
	// is an answer and ends the wait. When the wait's own deadline cut the
	// command short, the wait ends on its timeout with the last answer kept.
	noAnswer := func(ctx context.Context, err error) bool {
		var ce *plugins.CommandError
		if err == nil || errors.As(err, &ce) {
			unreachable = nil
			return false
		}
		if !cutShort(ctx) {
			unreachable = err
		}
		return true
	}
	fail := func(ctx context.Context, err error) (kwait.Verdict, string, error) {
		if !cutShort(ctx) {
			// Not the wait's deadline cutting a command short.
			stop = err
		}
		return kwait.Fail, "", err
	}
	dropped := kwait.NewGate("replication slot "+name+" on "+primary.Name, "to be dropped once inactive", func(ctx context.Context, _ kwait.Snapshot) (kwait.Verdict, string, error) {
		for {
			out, err := t.Run(ctx, primary, container, "psql", psqlCommand(dropSlotSQL(name)))
			if noAnswer(ctx, err) {
				return kwait.NotYet, "no answer from " + primary.Name, nil
			}
			if err == nil && strings.TrimSpace(string(out)) == "1" {
				opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionChanged, Pod: primary.Name, Object: object,
					Message: fmt.Sprintf("dropped replication slot %s on %s", name, primary.Name)})
				return kwait.Pass, "dropped", nil
			}
			// Not dropped: active, gone, or the drop raced with a walsender.
			raced := false
			var ce *plugins.CommandError
			if errors.As(err, &ce) && strings.Contains(ce.Stderr, "is active for PID") {
				raced = true
			} else if err != nil {
				return fail(ctx, fmt.Errorf("dropping replication slot %s on %s: %w", name, primary.Name, err))
			}
			out, err = t.Run(ctx, primary, container, "psql", psqlCommand(slotStateSQL(name)))
			if noAnswer(ctx, err) {
				return kwait.NotYet, "no answer from " + primary.Name, nil
			}
			if err != nil {
				return fail(ctx, fmt.Errorf("reading replication slot %s on %s: %w", name, primary.Name, err))
			}
			var st slotState
			if err := json.Unmarshal([]byte(strings.TrimSpace(string(out))), &st); err != nil {
				return fail(ctx, fmt.Errorf("reading replication slot %s on %s: cannot parse %q: %w", name, primary.Name, out, err))
			}
			if !st.Exists {
				opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionSkipped, Pod: primary.Name, Object: object,
					Message: fmt.Sprintf("replication slot %s on %s is already gone", name, primary.Name)})
				return kwait.Pass, "already gone", nil
			}
			holder = ""
			if st.ActivePID != nil {
				holder = fmt.Sprintf(" by pid %d", *st.ActivePID)
			}
			if !st.Active && !raced {
				// The replica let go between the drop and this read: the
				// drop found the slot active. Drop it again at once.
				if inactiveRetries++; inactiveRetries <= maxInactiveRetries {
					continue
				}
				return fail(ctx, fmt.Errorf("replication slot %s on %s is inactive but was not dropped after %d attempts", name, primary.Name, inactiveRetries))
			}
			if !waiting {
				waiting = true
				opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionWaiting, Pod: primary.Name, Object: object,
					Message: fmt.Sprintf("replication slot %s on %s is active%s; waiting up to %s for it to become inactive", name, primary.Name, holder, wait)})
			}
			return kwait.NotYet, "active" + holder, nil
		}
	})
	interval := e.Interval
	if interval <= 0 {
		interval = slotPoll
	}
	err := kwait.Waiter{Timeout: wait, Interval: interval}.Poll(ctx, dropped)
	var timeout *kwait.TimeoutError
	switch {
	case stop != nil:
		return stop
	case errors.As(err, &timeout) && ctx.Err() == nil && unreachable != nil:
		return fmt.Errorf("replication slot %s on %s was not dropped within %s: the last attempt got no answer from the primary (%v); "+
			"run the scale-down again once %s answers (%w)", name, primary.Name, wait, unreachable, primary.Name, err)
	case errors.As(err, &timeout) && ctx.Err() == nil:
		return fmt.Errorf("replication slot %s on %s is still active%s after %s: a replica or client still streams from it. "+
			"kubectl-sts never drops an active slot; stop what uses it (or wait for wal_sender_timeout to end a vanished "+
			"replica's connection) and run the scale-down again (%w)", name, primary.Name, holder, wait, err)
	case err != nil && ctx.Err() != nil:
		return ctx.Err()
	}
	return err
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
