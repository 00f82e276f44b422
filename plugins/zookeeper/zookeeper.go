// Package zookeeper is the ZooKeeper engine: each server's mode (leader,
// follower, observer), zxid and its lag behind the leader, outstanding
// requests and the ensemble's membership, through the four-letter words
// srvr, mntr and conf; and, on scale-down, `zkCli.sh reconfig -remove` of
// the removed ordinal's server before its pod goes, where dynamic
// reconfiguration is on.
package zookeeper

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/kubectl-sts/kubectl-sts/plugins"
)

// Name is the engine's --engine value.
const Name = "zookeeper"

// DefaultMaxZxidLag bounds how many transactions a server may be behind the
// leader and still count as synced.
const DefaultMaxZxidLag = 1000

// marker separates the answers of wordsScript.
const marker = "--- kubectl-sts ---"

// wordsScript sends each four-letter word given as a positional parameter
// to the pod's own server and prints the answers, then the reconfigEnabled
// line of the server's configuration file. The client port is the
// container's ZOO_PORT_NUMBER (Bitnami), ZOO_CLIENT_PORT or ZOO_PORT, else
// 2181; the file is ZOOCFG, else $ZOOCFGDIR/zoo.cfg, else where the official,
// Bitnami and Debian packages keep it. bash is needed for /dev/tcp.
const wordsScript = `port="${ZOO_PORT_NUMBER:-${ZOO_CLIENT_PORT:-${ZOO_PORT:-2181}}}"
for w in "$@"; do
  exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 2
  printf '%s' "$w" >&3
  cat <&3
  exec 3<&-
  printf '\n%s\n' '` + marker + `'
done
for c in "${ZOOCFG:-}" "${ZOOCFGDIR:+$ZOOCFGDIR/zoo.cfg}" /conf/zoo.cfg /opt/bitnami/zookeeper/conf/zoo.cfg /etc/zookeeper/conf/zoo.cfg; do
  if [ -n "$c" ] && [ -r "$c" ]; then
    printf 'configFile=%s\n' "$c"
    grep -E '^[[:space:]]*reconfigEnabled[[:space:]]*=' "$c" | tail -n 1
    break
  fi
done`

// cliScript runs zkCli.sh against the pod's own server with the arguments
// given as positional parameters. Authentication comes from the
// container's own CLIENT_JVMFLAGS / JVMFLAGS (a JAAS file), as for any zkCli.sh.
const cliScript = `port="${ZOO_PORT_NUMBER:-${ZOO_CLIENT_PORT:-${ZOO_PORT:-2181}}}"
exec zkCli.sh -server "127.0.0.1:$port" "$@"`

// Engine is the ZooKeeper engine.
type Engine struct {
	// MaxZxidLag overrides DefaultMaxZxidLag when positive.
	MaxZxidLag int64
}

// New returns the engine.
func New() *Engine { return &Engine{} }

var (
	_ plugins.Engine       = (*Engine)(nil)
	_ plugins.QuorumEngine = (*Engine)(nil)
)

// Name implements plugins.Engine.
func (e *Engine) Name() string { return Name }

// Aliases implements plugins.Aliased.
func (e *Engine) Aliases() []string { return []string{"zk"} }

// Matches implements plugins.Engine: zookeeper and bitnami/zookeeper, not
// exporters.
func (e *Engine) Matches(image string) bool { return plugins.MatchImage(image, "zookeeper") }

func (e *Engine) maxLag() int64 {
	if e.MaxZxidLag > 0 {
		return e.MaxZxidLag
	}
	return DefaultMaxZxidLag
}

// Server is one line of the membership: server.ID=host:quorum:election:role;client.
type Server struct {
	ID       int
	Host     string
	Observer bool
	Line     string
}

// View is what one pod's server reports.
type View struct {
	Srvr map[string]string
	Mntr map[string]string
	// ServerID is the server's own id (conf serverId); 0 when unknown.
	ServerID int
	Members  []Server
	// ConfigVersion is the membership's version (conf version=).
	ConfigVersion string
	// Reconfig is "true", "false" or "" when the configuration file was not found.
	Reconfig   string
	ConfigFile string
}

// Mode is the server's mode from srvr: leader, follower, observer,
// standalone, or "not serving".
func (v View) Mode() string {
	if m := v.Srvr["Mode"]; m != "" {
		return m
	}
	return "not serving"
}

// Zxid parses the server's last zxid.
func (v View) Zxid() (int64, bool) {
	s := strings.TrimPrefix(v.Srvr["Zxid"], "0x")
	n, err := strconv.ParseInt(s, 16, 64)
	return n, err == nil && s != ""
}

// ParseView parses wordsScript's output for srvr, mntr and conf.
func ParseView(out string) (View, error) {
	parts := strings.Split(out, marker)
	if len(parts) != 4 {
		return View{}, fmt.Errorf("unexpected four-letter-word output (%d parts)", len(parts))
	}
	v := View{Srvr: map[string]string{}, Mntr: map[string]string{}}
	srvr := strings.TrimSpace(parts[0])
	if strings.Contains(srvr, "not currently serving requests") {
		return v, errors.New("the server is not serving requests (no quorum, or still starting)")
	}
	if strings.Contains(srvr, "not in the whitelist") || strings.Contains(srvr, "not executed") {
		return v, fmt.Errorf("the server refused srvr: %s (add it to 4lw.commands.whitelist)", firstLine(srvr))
	}
	for _, l := range lines(srvr) {
		if k, val, ok := strings.Cut(l, ":"); ok {
			v.Srvr[strings.TrimSpace(k)] = strings.TrimSpace(val)
		}
	}
	if v.Srvr["Mode"] == "" {
		return v, fmt.Errorf("srvr answered without a mode: %q", firstLine(srvr))
	}
	for _, l := range lines(parts[1]) {
		if k, val, ok := strings.Cut(l, "\t"); ok {
			v.Mntr[k] = strings.TrimSpace(val)
		}
	}
	for _, l := range lines(parts[2]) {
		switch {
		case strings.HasPrefix(l, "serverId="):
			v.ServerID, _ = strconv.Atoi(strings.TrimPrefix(l, "serverId="))
		case strings.HasPrefix(l, "version="):
			v.ConfigVersion = strings.TrimPrefix(l, "version=")
		case strings.HasPrefix(l, "server."):
			if s, ok := parseServer(l); ok {
				v.Members = append(v.Members, s)
			}
		}
	}
	for _, l := range lines(parts[3]) {
		if f, ok := strings.CutPrefix(l, "configFile="); ok {
			v.ConfigFile = f
			v.Reconfig = "false" // ZooKeeper's default since 3.5.3
			continue
		}
		if k, val, ok := strings.Cut(l, "="); ok && strings.TrimSpace(k) == "reconfigEnabled" {
			v.Reconfig = strings.ToLower(strings.TrimSpace(val))
		}
	}
	return v, nil
}

func parseServer(l string) (Server, bool) {
	key, val, ok := strings.Cut(l, "=")
	if !ok {
		return Server{}, false
	}
	id, err := strconv.Atoi(strings.TrimPrefix(key, "server."))
	if err != nil {
		return Server{}, false
	}
	addr, _, _ := strings.Cut(val, ";")
	f := strings.Split(addr, ":")
	s := Server{ID: id, Host: f[0], Line: l}
	for _, x := range f[1:] {
		if x == "observer" {
			s.Observer = true
		}
	}
	return s, true
}

func lines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

// state is one reading of every pod.
type state struct {
	members []plugins.Member
	views   map[string]View
	pods    map[string]int
	// authority is the view whose membership counts: the leader's, else
	// the highest config version's.
	authority View
	leader    string
	serverPod map[int]string
	podServer map[string]int
	// withoutPod are the membership's servers no pod is known to run.
	withoutPod []Server
}

func (e *Engine) read(ctx context.Context, t plugins.Target) (state, error) {
	members, views, err := plugins.QueryViews(ctx, t, plugins.RunParsed(t, e.Matches, "four-letter words",
		[]string{"bash", "-c", wordsScript, "zookeeper", "srvr", "mntr", "conf"},
		func(out []byte) (View, error) { return ParseView(string(out)) }))
	st := state{members: members, views: views, pods: map[string]int{}, serverPod: map[int]string{}, podServer: map[string]int{}}
	for _, p := range t.Pods {
		st.pods[p.Name] = plugins.Ordinal(t.StatefulSet, p)
	}
	st.assemble()
	return st, err
}

// PodOf maps a membership entry to its pod: the pod whose server answered
// with its id, else the pod named like the first DNS label of its host
// (zk-2.zk-headless.ns.svc).
func PodOf(s Server, views map[string]View, pods map[string]int) string {
	for pod, v := range views {
		if v.ServerID == s.ID {
			if _, ok := pods[pod]; ok {
				return pod
			}
		}
	}
	label, _, _ := strings.Cut(s.Host, ".")
	if _, ok := pods[label]; ok {
		return label
	}
	return ""
}

func (st *state) assemble() {
	best := ""
	for _, pod := range slices.Sorted(maps.Keys(st.views)) {
		v := st.views[pod]
		switch {
		case v.Mode() == "leader":
			best = pod
		case best == "" || (st.views[best].Mode() != "leader" && configVersion(v) > configVersion(st.views[best])):
			best = pod
		}
		if v.Mode() == "leader" {
			st.leader = pod
		}
	}
	if best != "" {
		st.authority = st.views[best]
	}
	var withoutPod []string
	for _, s := range st.authority.Members {
		pod := PodOf(s, st.views, st.pods)
		if pod == "" {
			withoutPod = append(withoutPod, s.Line)
			st.withoutPod = append(st.withoutPod, s)
			continue
		}
		st.serverPod[s.ID] = pod
		st.podServer[pod] = s.ID
	}
	leaderZxid, leaderKnown := int64(0), false
	if st.leader != "" {
		leaderZxid, leaderKnown = st.views[st.leader].Zxid()
	}
	for i := range st.members {
		m := &st.members[i]
		v, ok := st.views[m.Pod]
		if !ok {
			continue
		}
		m.Details = map[string]string{
			"mode":        v.Mode(),
			"zxid":        v.Srvr["Zxid"],
			"outstanding": v.Srvr["Outstanding"],
			"nodeCount":   v.Srvr["Node count"],
			"version":     v.Srvr["Zookeeper version"],
		}
		if v.ServerID > 0 {
			m.Details["serverId"] = strconv.Itoa(v.ServerID)
		}
		if v.ConfigVersion != "" {
			m.Details["configVersion"] = v.ConfigVersion
		}
		switch v.Reconfig {
		case "true":
			m.Details["reconfig"] = "enabled"
		case "false":
			m.Details["reconfig"] = "disabled"
		}
		for _, k := range []string{"zk_synced_followers", "zk_learners", "zk_synced_observers", "zk_quorum_size"} {
			if x := v.Mntr[k]; x != "" && v.Mode() == "leader" {
				m.Details[strings.TrimPrefix(k, "zk_")] = x
			}
		}
		if len(withoutPod) > 0 {
			m.Details[plugins.DetailWithoutPod] = strings.Join(withoutPod, "; ")
		}
		if z, ok := v.Zxid(); ok && leaderKnown {
			m.Details["zxidLag"] = strconv.FormatInt(ZxidLag(leaderZxid, z), 10)
		}
		_, member := st.podServer[m.Pod]
		switch mode := v.Mode(); {
		case !member && len(st.authority.Members) > 0:
			m.Role, m.State = plugins.RoleUnknown, "not a member"
		case mode == "leader":
			m.Role, m.State = plugins.RolePrimary, mode
		case mode == "follower":
			m.Role, m.State = plugins.RoleReplica, mode
		case mode == "observer":
			m.Role, m.State = plugins.RoleLearner, mode
		default:
			m.Role, m.State = plugins.RoleUnknown, mode
		}
	}
}

// ZxidLag is how many transactions a server whose last zxid is z is
// behind a leader at leader. A zxid is epoch<<32 | counter: a server that
// has seen nothing of the leader's epoch yet (an idle ensemble after an
// election) lacks that epoch's counter transactions.
func ZxidLag(leader, z int64) int64 {
	switch {
	case z>>32 == leader>>32:
		return max(leader-z, 0)
	case z>>32 < leader>>32:
		return leader & 0xffffffff
	}
	return 0
}

// Members implements plugins.Engine.
func (e *Engine) Members(ctx context.Context, t plugins.Target) ([]plugins.Member, error) {
	st, err := e.read(ctx, t)
	return st.members, err
}

// Healthy implements plugins.Engine: every server answered and is in the
// membership, exactly one leader, every follower and observer within
// MaxZxidLag transactions of the leader in the leader's epoch, no server of
// the membership without a pod. ZooKeeper measures no lag in bytes or
// seconds, so such a bound cannot be met.
func (e *Engine) Healthy(members []plugins.Member, opts plugins.HealthOptions) (bool, string) {
	// None of members need lead: a follower is in that mode only while it
	// follows a leader.
	if r := plugins.QuorumReason(members); r != "" {
		return false, r
	}
	var problems plugins.Problems
	for _, m := range members {
		switch {
		case m.State == "not a member":
			problems.Addf("%s runs server %s, which is not in the ensemble's membership", m.Pod, m.Details["serverId"])
			continue
		case m.Role == plugins.RoleUnknown:
			problems.Addf("%s is %s", m.Pod, m.State)
			continue
		}
		if m.Role == plugins.RolePrimary {
			continue
		}
		lag, err := strconv.ParseInt(m.Details["zxidLag"], 10, 64)
		switch {
		case err != nil:
			problems.Addf("%s: lag behind the leader unknown", m.Pod)
		case lag > e.maxLag():
			problems.Addf("%s is %d transactions behind the leader (bound %d)", m.Pod, lag, e.maxLag())
		}
		problems.Add(plugins.LagReason(m, opts))
	}
	problems.Add(plugins.WithoutPodReason(members, "remove them with zkCli.sh reconfig -remove, or bring their pods back"))
	return problems.Verdict()
}

// Membership implements plugins.QuorumEngine: the participants of the
// leader's membership (observers do not vote: they are its Learners), healthy when their pod's
// server answered as leader or follower. Without dynamic reconfiguration
// the membership is static, and Static says what to do instead.
func (e *Engine) Membership(ctx context.Context, t plugins.Target) (plugins.Membership, error) {
	st, err := e.read(ctx, t)
	if err != nil {
		return plugins.Membership{}, err
	}
	return st.membership(t)
}

func (st state) membership(t plugins.Target) (plugins.Membership, error) {
	if len(st.authority.Members) == 0 {
		return plugins.Membership{}, fmt.Errorf("no ZooKeeper server reported the membership: %s", plugins.Unanswered(st.members))
	}
	if r := st.unmapped(); r != "" {
		return plugins.Membership{}, errors.New(r)
	}
	out := plugins.Membership{Engine: Name}
	for _, s := range st.authority.Members {
		v := plugins.Voter{Name: "server." + strconv.Itoa(s.ID), Ordinal: -1}
		if pod, ok := st.serverPod[s.ID]; ok {
			v.Pod, v.Ordinal = pod, st.pods[pod]
			if view, answered := st.views[pod]; answered {
				v.Healthy = view.Mode() == "leader" || view.Mode() == "follower" || (s.Observer && view.Mode() == "observer")
			}
		}
		if s.Observer {
			out.Learners = append(out.Learners, v)
			continue
		}
		out.Voters = append(out.Voters, v)
	}
	if r := st.reconfig(); r != "true" {
		out.Static = staticSteps(t, r)
	}
	return out, nil
}

// reconfig is "true" when every answering server's configuration enables
// dynamic reconfiguration, "" when it could not be read.
func (st state) reconfig() string {
	got := ""
	for _, pod := range slices.Sorted(maps.Keys(st.views)) {
		switch r := st.views[pod].Reconfig; {
		case r == "":
			return ""
		case r != "true":
			return r
		default:
			got = r
		}
	}
	return got
}

func staticSteps(t plugins.Target, reconfig string) string {
	why := "dynamic reconfiguration is off (reconfigEnabled=false)"
	if reconfig == "" {
		why = "whether dynamic reconfiguration is on could not be read (no zoo.cfg in ZOOCFG, ZOOCFGDIR or the usual places)"
	}
	name := "the statefulset"
	if t.StatefulSet != nil {
		name = "statefulset " + t.StatefulSet.Name
	}
	return fmt.Sprintf("the ZooKeeper membership cannot be changed while it runs: %s. With a static configuration, scale down by hand: "+
		"1) remove the servers of the removed ordinals from the server.N lines of zoo.cfg (the ConfigMap or the chart's replica count) of %s; "+
		"2) roll the servers that stay one at a time, followers first and the leader last, waiting until each rejoins (srvr shows Mode: follower); "+
		"3) then lower the replicas with kubectl sts scale-down --engine none. Or set reconfigEnabled=true (with skipACL or a super user for zkCli.sh reconfig) and run this command again", why, name)
}

// unmapped says why the membership cannot be judged: a pod that does not
// answer, whose server's host does not name it, while the membership lists
// servers no pod is known to run. Which of them the pod runs cannot be
// told, so quorum cannot be counted and a removal could not find its
// server (it would take the pod for one already removed and leave its
// server behind as a voter that never answers). "" when every pod's
// server is known.
func (st state) unmapped() string {
	if len(st.withoutPod) == 0 {
		return ""
	}
	var pods []string
	for _, pod := range slices.Sorted(maps.Keys(st.pods)) {
		_, answered := st.views[pod]
		if _, known := st.podServer[pod]; !answered && !known {
			pods = append(pods, pod)
		}
	}
	if len(pods) == 0 {
		return ""
	}
	var servers []string
	for _, s := range st.withoutPod {
		servers = append(servers, s.Line)
	}
	return plugins.UnmappedReason(pods, servers, "server", "whose host names no pod", "zkCli.sh reconfig -remove <id>")
}

// configVersion is the membership's version as a number: a zxid in hex,
// whose length grows with the epoch, so strings do not compare. -1 when
// unknown.
func configVersion(v View) int64 {
	n, err := strconv.ParseInt(strings.TrimPrefix(v.ConfigVersion, "0x"), 16, 64)
	if err != nil {
		return -1
	}
	return n
}
