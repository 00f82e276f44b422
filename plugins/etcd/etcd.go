// Package etcd is the etcd engine: each member's role, raft term, applied
// index and lag behind the leader, DB size and alarms from etcdctl in its
// own pod; the voting membership for quorum arithmetic; and, on
// scale-down, `etcdctl member remove` of the removed ordinal's member
// before its pod goes (moving the leadership away first when it leads).
package etcd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-sts/kubectl-sts/plugins"
)

// Name is the engine's --engine value.
const Name = "etcd"

// DefaultMaxIndexLag bounds how many raft entries a member may have left
// to apply behind the leader's commit index and still count as caught up.
// etcd itself refuses new requests on a member 5000 entries behind.
const DefaultMaxIndexLag = 1000

// DefaultRemoveWait bounds the wait for the membership to settle after a
// member removal when RemoveOptions.Wait is zero.
const DefaultRemoveWait = 2 * time.Minute

// etcdctl runs directly, without a shell (the official etcd images are
// distroless), with the container's own environment only:
// ETCDCTL_ENDPOINTS, ETCDCTL_CACERT/CERT/KEY, ETCDCTL_USER... are read by
// etcdctl itself; with no ETCDCTL_ENDPOINTS it asks 127.0.0.1:2379, the
// pod's own member. No flag is passed that has an ETCDCTL_* twin: etcdctl
// 3.6 refuses a flag its environment also sets. Arguments are argv
// elements, never pasted into a script.
var (
	statusArgs = []string{"etcdctl", "endpoint", "status", "-w", "json"}
	listArgs   = []string{"etcdctl", "member", "list", "-w", "json"}
	alarmArgs  = []string{"etcdctl", "alarm", "list", "-w", "json"}
)

// Engine is the etcd engine.
type Engine struct {
	// MaxIndexLag overrides DefaultMaxIndexLag when positive.
	MaxIndexLag uint64
	// PollInterval is how often BeforeRemove re-reads the membership while
	// it waits; zero means 500ms.
	PollInterval time.Duration
}

// New returns the engine.
func New() *Engine { return &Engine{} }

var (
	_ plugins.Engine       = (*Engine)(nil)
	_ plugins.QuorumEngine = (*Engine)(nil)
)

// Name implements plugins.Engine.
func (e *Engine) Name() string { return Name }

// Matches implements plugins.Engine: etcd images (quay.io/coreos/etcd,
// registry.k8s.io/etcd, bitnami/etcd), not etcd operators or backups.
func (e *Engine) Matches(image string) bool { return plugins.MatchImage(image, "etcd") }

func (e *Engine) maxIndexLag() uint64 {
	if e.MaxIndexLag > 0 {
		return e.MaxIndexLag
	}
	return DefaultMaxIndexLag
}

// Header is the response header etcd puts on every answer.
type Header struct {
	ClusterID uint64 `json:"cluster_id"`
	MemberID  uint64 `json:"member_id"`
	Revision  int64  `json:"revision"`
	RaftTerm  uint64 `json:"raft_term"`
}

// EndpointStatus is one entry of `etcdctl endpoint status -w json`.
type EndpointStatus struct {
	Endpoint string `json:"Endpoint"`
	Status   struct {
		Header           Header   `json:"header"`
		Version          string   `json:"version"`
		DBSize           int64    `json:"dbSize"`
		DBSizeInUse      int64    `json:"dbSizeInUse"`
		Leader           uint64   `json:"leader"`
		RaftIndex        uint64   `json:"raftIndex"`
		RaftTerm         uint64   `json:"raftTerm"`
		RaftAppliedIndex uint64   `json:"raftAppliedIndex"`
		Errors           []string `json:"errors"`
		IsLearner        bool     `json:"isLearner"`
	} `json:"Status"`
}

// MemberInfo is one member of `etcdctl member list -w json`.
type MemberInfo struct {
	ID         uint64   `json:"ID"`
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peerURLs"`
	ClientURLs []string `json:"clientURLs"`
	IsLearner  bool     `json:"isLearner"`
}

// Alarm is one alarm of `etcdctl alarm list -w json`.
type Alarm struct {
	MemberID uint64 `json:"memberID"`
	Alarm    int    `json:"alarm"`
}

// AlarmName names etcd's alarm types.
func AlarmName(a int) string {
	switch a {
	case 1:
		return "NOSPACE"
	case 2:
		return "CORRUPT"
	}
	return "ALARM" + strconv.Itoa(a)
}

// View is what one pod's member reports.
type View struct {
	Self    EndpointStatus
	Members []MemberInfo
	Alarms  []Alarm
}

// ParseView parses the answers of endpoint status, member list and alarm
// list. With several endpoints in ETCDCTL_ENDPOINTS the pod's own one is
// the entry whose member is named like the pod.
func ParseView(status, members, alarmList []byte, pod string) (View, error) {
	var statuses []EndpointStatus
	if err := json.Unmarshal(bytes.TrimSpace(status), &statuses); err != nil {
		return View{}, fmt.Errorf("parsing endpoint status: %w", err)
	}
	var list struct {
		Header  Header       `json:"header"`
		Members []MemberInfo `json:"members"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(members), &list); err != nil {
		return View{}, fmt.Errorf("parsing member list: %w", err)
	}
	var alarms struct {
		Alarms []Alarm `json:"alarms"`
	}
	if a := bytes.TrimSpace(alarmList); len(a) > 0 {
		if err := json.Unmarshal(a, &alarms); err != nil {
			return View{}, fmt.Errorf("parsing alarm list: %w", err)
		}
	}
	v := View{Members: list.Members, Alarms: alarms.Alarms}
	switch len(statuses) {
	case 0:
		return View{}, errors.New("etcdctl endpoint status returned no endpoint")
	case 1:
		v.Self = statuses[0]
		return v, nil
	}
	for _, s := range statuses {
		for _, m := range list.Members {
			if m.ID == s.Status.Header.MemberID && m.Name == pod {
				v.Self = s
				return v, nil
			}
		}
	}
	return View{}, fmt.Errorf("ETCDCTL_ENDPOINTS names %d endpoints and none is a member named %s: point it at the pod's own member", len(statuses), pod)
}

// HexID formats a member ID as etcdctl takes it.
func HexID(id uint64) string { return strconv.FormatUint(id, 16) }

// state is one reading of every pod.
type state struct {
	members []plugins.Member
	views   map[string]View
	pods    map[string]int
	cluster Cluster
}

func (e *Engine) read(ctx context.Context, t plugins.Target) (state, error) {
	members, views, err := plugins.QueryViews(ctx, t, func(ctx context.Context, pod *corev1.Pod) (View, error) {
		var answers [3][]byte
		for i, args := range [][]string{statusArgs, listArgs, alarmArgs} {
			out, err := e.ctl(ctx, t, pod, args[1:]...)
			if err != nil {
				if i > 0 && learnerOnly(answers[0], err) {
					// A learner answers endpoint status only ("rpc not
					// supported for learner"); the voters' views hold the
					// membership and alarms.
					break
				}
				return View{}, err
			}
			answers[i] = []byte(out)
		}
		if len(answers[1]) == 0 {
			answers[1] = []byte(`{"members":[]}`)
		}
		v, err := ParseView(answers[0], answers[1], answers[2], pod.Name)
		if err != nil {
			return View{}, fmt.Errorf("pod %s: %w", pod.Name, err)
		}
		return v, nil
	})
	st := state{members: members, views: views, pods: podNames(t)}
	st.cluster = Assemble(members, views, st.pods)
	return st, err
}

// learnerOnly reports whether err is a learner's refusal of an RPC only
// voters serve, after status said the member is a learner.
func learnerOnly(status []byte, err error) bool {
	var ce *plugins.CommandError
	if !errors.As(err, &ce) || !strings.Contains(ce.Stderr, "rpc not supported for learner") {
		return false
	}
	var statuses []EndpointStatus
	if json.Unmarshal(bytes.TrimSpace(status), &statuses) != nil {
		return false
	}
	return len(statuses) == 1 && statuses[0].Status.IsLearner
}

func podNames(t plugins.Target) map[string]int {
	out := map[string]int{}
	for _, p := range t.Pods {
		out[p.Name] = plugins.Ordinal(t.StatefulSet, p)
	}
	return out
}

// Cluster is the cluster as the answering members agree on it.
type Cluster struct {
	// Leader is the member ID the most recent term's views name.
	Leader uint64
	Term   uint64
	// LeaderIndex is the leader's commit index, if the leader answered.
	LeaderIndex  uint64
	LeaderKnown  bool
	Membership   []MemberInfo
	Alarms       []Alarm
	PodOfMember  map[uint64]string
	MemberOfPod  map[string]uint64
	WithoutPod   []MemberInfo
	Unmembered   []string
	Disagreement string
}

// Authority returns the view of the most recent raft term, the leader's
// own where it answered: its membership and leader are the cluster's.
// Learners, which cannot list the membership, are not asked.
func Authority(views map[string]View) (View, bool) {
	var best View
	found := false
	for _, pod := range slices.Sorted(maps.Keys(views)) {
		v := views[pod]
		s := v.Self.Status
		if len(v.Members) == 0 && s.IsLearner {
			continue // a learner lists no membership
		}
		better := !found || s.RaftTerm > best.Self.Status.RaftTerm ||
			(s.RaftTerm == best.Self.Status.RaftTerm && s.Header.MemberID == s.Leader)
		if better {
			best, found = v, true
		}
	}
	return best, found
}

// PodOf maps a membership entry to the pod that runs it: the pod whose
// member answered with its ID, else the pod named like the member, else
// the pod whose name is the first label of the member's peer URL host
// (etcd-2.etcd-headless.ns.svc). "" when no pod runs it.
func PodOf(m MemberInfo, views map[string]View, pods map[string]int) string {
	for _, pod := range slices.Sorted(maps.Keys(views)) {
		if views[pod].Self.Status.Header.MemberID == m.ID {
			if _, ok := pods[pod]; ok {
				return pod
			}
		}
	}
	if _, ok := pods[m.Name]; ok && m.Name != "" {
		return m.Name
	}
	for _, u := range m.PeerURLs {
		pu, err := url.Parse(u)
		if err != nil {
			continue
		}
		label, _, _ := strings.Cut(pu.Hostname(), ".")
		if _, ok := pods[label]; ok {
			return label
		}
	}
	return ""
}

// Assemble fills members (one per pod, Role unset unless the pod did not
// answer) from the views and returns the cluster they agree on.
func Assemble(members []plugins.Member, views map[string]View, pods map[string]int) Cluster {
	c := Cluster{PodOfMember: map[uint64]string{}, MemberOfPod: map[string]uint64{}}
	auth, ok := Authority(views)
	if !ok {
		return c
	}
	c.Leader, c.Term = auth.Self.Status.Leader, auth.Self.Status.RaftTerm
	c.Membership, c.Alarms = auth.Members, auth.Alarms
	for _, v := range views {
		if v.Self.Status.Header.MemberID == c.Leader && c.Leader != 0 {
			c.LeaderIndex, c.LeaderKnown = v.Self.Status.RaftIndex, true
		}
		if v.Self.Status.RaftTerm == c.Term && v.Self.Status.Leader != c.Leader && v.Self.Status.Leader != 0 {
			c.Disagreement = fmt.Sprintf("members disagree on the leader in term %d", c.Term)
		}
	}
	for _, m := range c.Membership {
		pod := PodOf(m, views, pods)
		if pod == "" {
			c.WithoutPod = append(c.WithoutPod, m)
			continue
		}
		c.PodOfMember[m.ID] = pod
		c.MemberOfPod[pod] = m.ID
	}
	var withoutPod []string
	for _, m := range c.WithoutPod {
		withoutPod = append(withoutPod, describe(m))
	}
	for i := range members {
		m := &members[i]
		v, ok := views[m.Pod]
		if !ok {
			continue
		}
		s := v.Self.Status
		id := s.Header.MemberID
		m.Details = map[string]string{
			"id":           HexID(id),
			"version":      s.Version,
			"raftTerm":     strconv.FormatUint(s.RaftTerm, 10),
			"raftIndex":    strconv.FormatUint(s.RaftIndex, 10),
			"appliedIndex": strconv.FormatUint(s.RaftAppliedIndex, 10),
			"dbSize":       strconv.FormatInt(s.DBSize, 10),
			"dbSizeInUse":  strconv.FormatInt(s.DBSizeInUse, 10),
			"leader":       HexID(s.Leader),
		}
		if info, ok := memberByID(c.Membership, id); ok {
			m.Details["peerURLs"] = strings.Join(info.PeerURLs, ",")
		}
		if len(withoutPod) > 0 {
			m.Details[plugins.DetailWithoutPod] = strings.Join(withoutPod, "; ")
		}
		var alarms []string
		for _, a := range c.Alarms {
			if a.MemberID == id {
				alarms = append(alarms, AlarmName(a.Alarm))
			}
		}
		if len(alarms) > 0 {
			m.Details["alarms"] = strings.Join(alarms, ",")
		}
		if c.LeaderKnown {
			lag := uint64(0)
			if c.LeaderIndex > s.RaftAppliedIndex {
				lag = c.LeaderIndex - s.RaftAppliedIndex
			}
			m.Details["indexLag"] = strconv.FormatUint(lag, 10)
		}
		switch _, member := memberByID(c.Membership, id); {
		case !member:
			m.Role, m.State = plugins.RoleUnknown, "not a member"
			c.Unmembered = append(c.Unmembered, m.Pod)
		case s.IsLearner:
			m.Role, m.State = plugins.RoleLearner, "learner"
		case id == s.Leader:
			m.Role, m.State = plugins.RolePrimary, "leader"
		case s.Leader == 0:
			m.Role, m.State = plugins.RoleReplica, "no leader"
		default:
			m.Role, m.State = plugins.RoleReplica, "follower"
		}
	}
	return c
}

func memberByID(ms []MemberInfo, id uint64) (MemberInfo, bool) {
	for _, m := range ms {
		if m.ID == id {
			return m, true
		}
	}
	return MemberInfo{}, false
}

func describe(m MemberInfo) string {
	name := m.Name
	if name == "" {
		name = "unstarted"
	}
	return fmt.Sprintf("%s (id %s, peer %s)", name, HexID(m.ID), strings.Join(m.PeerURLs, ","))
}

// Members implements plugins.Engine.
func (e *Engine) Members(ctx context.Context, t plugins.Target) ([]plugins.Member, error) {
	st, err := e.read(ctx, t)
	return st.members, err
}

// Healthy implements plugins.Engine: every member answered and is in the
// membership, one leader all follow (it may be outside members), no learner left unpromoted, no
// member of the membership without a pod, no alarm, and every member's
// applied index within MaxIndexLag of the leader's commit index. etcd
// measures no lag in bytes or seconds, so such a bound cannot be met.
func (e *Engine) Healthy(members []plugins.Member, opts plugins.HealthOptions) (bool, string) {
	if r := plugins.QuorumReason(members); r != "" {
		return false, r
	}
	leader := members[0].Details["leader"]
	if p := plugins.Primaries(members); len(p) == 1 {
		leader = p[0].Details["id"]
	}
	if leader == "" || leader == "0" {
		return false, "no member is the leader"
	}
	var problems plugins.Problems
	for _, m := range members {
		switch {
		case m.State == "not a member":
			problems.Addf("%s runs member %s, which is not in the membership (it was removed, or belongs to another cluster)", m.Pod, m.Details["id"])
			continue
		case m.Role == plugins.RoleLearner:
			problems.Addf("%s is a learner: promote it (etcdctl member promote %s) once it has caught up", m.Pod, m.Details["id"])
		case m.Details["leader"] != leader:
			problems.Addf("%s follows leader %s, not %s", m.Pod, m.Details["leader"], leader)
		}
		if a := m.Details["alarms"]; a != "" {
			problems.Addf("alarm %s on %s", a, m.Pod)
		}
		if lag, err := strconv.ParseUint(m.Details["indexLag"], 10, 64); err == nil && lag > e.maxIndexLag() {
			problems.Addf("%s is %d entries behind the leader (bound %d)", m.Pod, lag, e.maxIndexLag())
		}
		if m.Role == plugins.RoleReplica {
			problems.Add(plugins.LagReason(m, opts))
		}
	}
	problems.Add(plugins.WithoutPodReason(members, "remove them with etcdctl member remove, or bring their pods back"))
	return problems.Verdict()
}

// Membership implements plugins.QuorumEngine: the voters of the
// membership the most recent term reports, each healthy when its pod's
// member answered with its ID.
func (e *Engine) Membership(ctx context.Context, t plugins.Target) (plugins.Membership, error) {
	st, err := e.read(ctx, t)
	if err != nil {
		return plugins.Membership{}, err
	}
	return st.membership()
}

func (st state) membership() (plugins.Membership, error) {
	c, views, pods := st.cluster, st.views, st.pods
	if len(views) == 0 {
		return plugins.Membership{}, fmt.Errorf("no etcd member answered: %s", plugins.Unanswered(st.members))
	}
	if r := st.unmapped(); r != "" {
		return plugins.Membership{}, errors.New(r)
	}
	out := plugins.Membership{Engine: Name}
	for _, m := range c.Membership {
		v := plugins.Voter{Name: m.Name, Ordinal: -1}
		if v.Name == "" {
			v.Name = HexID(m.ID)
		}
		if pod, ok := c.PodOfMember[m.ID]; ok {
			v.Pod, v.Ordinal = pod, pods[pod]
			view, answered := views[pod]
			v.Healthy = answered && view.Self.Status.Header.MemberID == m.ID && view.Self.Status.Leader != 0
		}
		if m.IsLearner {
			out.Learners = append(out.Learners, v)
			continue
		}
		out.Voters = append(out.Voters, v)
	}
	return out, nil
}

// unmapped says why the membership cannot be judged: a pod that does not
// answer, whose member is not named like it, while the membership lists
// members no pod is known to run. Which of them the pod runs cannot be
// told, so quorum cannot be counted and a removal could not find its
// member (it would take the pod for one already removed and leave its
// member behind as a voter that never answers). "" when every pod's
// member is known.
func (st state) unmapped() string {
	if len(st.cluster.WithoutPod) == 0 {
		return ""
	}
	var pods []string
	for _, pod := range slices.Sorted(maps.Keys(st.pods)) {
		_, answered := st.views[pod]
		if _, known := st.cluster.MemberOfPod[pod]; !answered && !known {
			pods = append(pods, pod)
		}
	}
	if len(pods) == 0 {
		return ""
	}
	var members []string
	for _, m := range st.cluster.WithoutPod {
		members = append(members, describe(m))
	}
	return plugins.UnmappedReason(pods, members, "member", "named like no pod and with no pod's host in its peer URLs", "etcdctl member remove <id>")
}
