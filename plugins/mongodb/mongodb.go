// Package mongodb is the MongoDB engine: member states, health and optime
// lag from rs.status() (through mongosh, or the legacy mongo shell), and,
// on scale-down, rs.remove() of the removed member on the primary.
package mongodb

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-sts/kubectl-sts/plugins"
)

// Name is the engine's --engine value.
const Name = "mongodb"

// shellScript runs mongosh (or the legacy mongo shell) with the
// container's own credentials: the official image's
// MONGO_INITDB_ROOT_USERNAME/PASSWORD or Bitnami's MONGODB_ROOT_USER/
// MONGODB_ROOT_PASSWORD. The shells read no password variable, so it is
// an argument of the shell inside the pod; it is never printed. The port
// is Bitnami's MONGODB_PORT_NUMBER, else 27017. The script to evaluate
// comes in as a positional parameter.
const shellScript = `if [ -n "${MONGO_INITDB_ROOT_USERNAME:-}" ] && [ -n "${MONGO_INITDB_ROOT_PASSWORD:-}" ]; then
  set -- -u "$MONGO_INITDB_ROOT_USERNAME" -p "$MONGO_INITDB_ROOT_PASSWORD" --authenticationDatabase admin "$@"
elif [ -n "${MONGODB_ROOT_PASSWORD:-}" ]; then
  set -- -u "${MONGODB_ROOT_USER:-root}" -p "$MONGODB_ROOT_PASSWORD" --authenticationDatabase admin "$@"
fi
port="${MONGODB_PORT_NUMBER:-27017}"
if command -v mongosh >/dev/null 2>&1; then exec mongosh --quiet --norc --port "$port" "$@"; fi
exec mongo --quiet --norc --port "$port" "$@"`

// statusJS prints rs.status() as relaxed Extended JSON (mongosh) or plain
// JSON (the legacy shell has no EJSON).
const statusJS = `var s = rs.status(); print(typeof EJSON !== 'undefined' ? EJSON.stringify(s, {relaxed: true}) : JSON.stringify(s))`

func command(script string) []string {
	return []string{"sh", "-c", shellScript, "mongosh", "--eval", script}
}

// removeJS runs rs.remove on host, which must have passed ValidateHost.
func removeJS(host string) string {
	return fmt.Sprintf(`var r = rs.remove(%s); print(JSON.stringify({ok: r.ok}))`, QuoteJS(host))
}

// ValidateHost checks a replica set member's host:port before it goes
// into a script: a DNS name or IPv4 address, an optional port.
func ValidateHost(host string) error {
	h, port, hasPort := strings.Cut(host, ":")
	if h == "" || len(h) > 253 {
		return fmt.Errorf("member host %q must be a host name of 1 to 253 characters", host)
	}
	for _, c := range h {
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' && c != '.' {
			return fmt.Errorf("member host %q may contain only letters, digits, '-' and '.' before the port", host)
		}
	}
	if hasPort {
		if port == "" || len(port) > 5 {
			return fmt.Errorf("member host %q has an invalid port", host)
		}
		for _, c := range port {
			if c < '0' || c > '9' {
				return fmt.Errorf("member host %q has an invalid port", host)
			}
		}
	}
	return nil
}

// QuoteJS quotes s as a JavaScript string literal. JSON strings are
// JavaScript strings; Go's encoder also escapes U+2028 and U+2029, which
// older JavaScript does not allow raw in a string, and <, > and &.
func QuoteJS(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		// Only invalid UTF-8 is replaced, never an error, for a string.
		return `""`
	}
	return string(b)
}

// Engine is the MongoDB engine.
type Engine struct{}

// New returns the engine.
func New() *Engine { return &Engine{} }

var _ plugins.Engine = (*Engine)(nil)

// Name implements plugins.Engine.
func (e *Engine) Name() string { return Name }

// LagUnits implements plugins.LagMeasurer: optime differences: seconds only.
func (e *Engine) LagUnits() plugins.LagUnits { return plugins.LagUnits{Bytes: false, Seconds: true} }

// Aliases implements plugins.Aliased.
func (e *Engine) Aliases() []string { return []string{"mongo"} }

// Matches implements plugins.Engine: mongo, mongodb, percona-server-mongodb
// and mongodb-community-server images (not mongos routers or exporters).
func (e *Engine) Matches(image string) bool {
	return plugins.MatchImage(image, "mongo", "mongodb")
}

// ReplSetStatus is the part of rs.status() the engine reads.
type ReplSetStatus struct {
	Set     string          `json:"set"`
	Date    Date            `json:"date"`
	MyState int             `json:"myState"`
	Members []ReplSetMember `json:"members"`
}

// ReplSetMember is one entry of rs.status().members.
type ReplSetMember struct {
	ID                   int     `json:"_id"`
	Name                 string  `json:"name"`
	Health               float64 `json:"health"`
	State                int     `json:"state"`
	StateStr             string  `json:"stateStr"`
	Self                 bool    `json:"self"`
	OptimeDate           Date    `json:"optimeDate"`
	SyncSourceHost       string  `json:"syncSourceHost"`
	LastHeartbeatMessage string  `json:"lastHeartbeatMessage"`
	InfoMessage          string  `json:"infoMessage"`
}

// Date is a BSON date as either shell prints it: relaxed Extended JSON
// ({"$date": "2024-…Z"} or {"$date": {"$numberLong": "…"}}), or plain
// JSON (an ISO string).
type Date struct{ time.Time }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Date) UnmarshalJSON(b []byte) error {
	var raw any
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	t, err := parseDate(raw)
	if err != nil {
		return err
	}
	d.Time = t
	return nil
}

func parseDate(raw any) (time.Time, error) {
	switch v := raw.(type) {
	case nil:
		return time.Time{}, nil
	case string:
		return time.Parse(time.RFC3339Nano, v)
	case float64:
		return time.UnixMilli(int64(v)).UTC(), nil
	case map[string]any:
		if inner, ok := v["$date"]; ok {
			return parseDate(inner)
		}
		if n, ok := v["$numberLong"].(string); ok {
			var ms int64
			if _, err := fmt.Sscan(n, &ms); err != nil {
				return time.Time{}, fmt.Errorf("invalid $numberLong %q", n)
			}
			return time.UnixMilli(ms).UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("cannot read a date from %v", raw)
}

// ParseStatus parses the shell's output of statusJS.
func ParseStatus(out []byte) (ReplSetStatus, error) {
	var st ReplSetStatus
	text := strings.TrimSpace(string(out))
	// The legacy shell may print connection banners before the document.
	if i := strings.Index(text, "{"); i > 0 {
		text = text[i:]
	}
	if err := json.Unmarshal([]byte(text), &st); err != nil {
		return st, fmt.Errorf("cannot parse rs.status(): %w", err)
	}
	if len(st.Members) == 0 {
		return st, fmt.Errorf("rs.status() lists no members")
	}
	return st, nil
}

// PodOfHost returns which pod a member host names: the first DNS label
// ("db-0.db.ns.svc.cluster.local:27017" is pod db-0) or the pod's IP.
func PodOfHost(host string, pods []*corev1.Pod) string {
	h, _, _ := strings.Cut(host, ":")
	label, _, _ := strings.Cut(h, ".")
	for _, p := range pods {
		if p.Name == label {
			return p.Name
		}
	}
	for _, p := range pods {
		if p.Status.PodIP != "" && p.Status.PodIP == h {
			return p.Name
		}
	}
	return ""
}

// Members implements plugins.Engine.
func (e *Engine) Members(ctx context.Context, t plugins.Target) ([]plugins.Member, error) {
	members, _, err := e.read(ctx, t)
	return members, err
}

func (e *Engine) read(ctx context.Context, t plugins.Target) ([]plugins.Member, map[string]ReplSetStatus, error) {
	members, views, err := plugins.QueryViews(ctx, t, plugins.RunParsed(t, e.Matches, "mongosh", command(statusJS), ParseStatus))
	Assemble(members, views, t.Pods)
	return members, views, err
}

// Authority returns the view to trust for the whole set: the one of the
// pod that is primary by its own account, else any, with its pod name.
func Authority(views map[string]ReplSetStatus) (string, ReplSetStatus, bool) {
	var fallback string
	for pod, v := range views {
		if v.MyState == 1 {
			return pod, v, true
		}
		if fallback == "" || pod < fallback {
			fallback = pod
		}
	}
	if fallback == "" {
		return "", ReplSetStatus{}, false
	}
	return fallback, views[fallback], true
}

// Assemble fills members: each pod's role and state from its own view
// (its "self" entry), its lag from the primary's view: how far its optime
// is behind the primary's.
func Assemble(members []plugins.Member, views map[string]ReplSetStatus, pods []*corev1.Pod) {
	_, auth, ok := Authority(views)
	var primaryOptime time.Time
	byPod := map[string]ReplSetMember{}
	if ok {
		for _, rm := range auth.Members {
			if rm.State == 1 {
				primaryOptime = rm.OptimeDate.Time
			}
			if p := PodOfHost(rm.Name, pods); p != "" {
				byPod[p] = rm
			}
		}
	}
	for i := range members {
		m := &members[i]
		v, answered := views[m.Pod]
		if !answered {
			continue
		}
		var self *ReplSetMember
		for j := range v.Members {
			if v.Members[j].Self {
				self = &v.Members[j]
			}
		}
		m.Details = map[string]string{"replicaSet": v.Set}
		if self == nil {
			m.Role, m.State = plugins.RoleUnknown, "not a member of "+v.Set
			continue
		}
		m.Role = roleOf(self.State)
		m.State = self.StateStr
		m.Details["host"] = self.Name
		if self.SyncSourceHost != "" {
			m.Details["syncSource"] = self.SyncSourceHost
		}
		if self.InfoMessage != "" {
			m.Details["info"] = self.InfoMessage
		}
		if m.Role != plugins.RoleReplica || primaryOptime.IsZero() {
			continue
		}
		seen, ok := byPod[m.Pod]
		if !ok || seen.OptimeDate.IsZero() || seen.OptimeDate.Unix() <= 0 {
			continue
		}
		if seen.Health != 1 {
			m.Details["health"] = "unreachable from the primary"
			if seen.LastHeartbeatMessage != "" {
				m.Details["health"] += ": " + seen.LastHeartbeatMessage
			}
		}
		lag := primaryOptime.Sub(seen.OptimeDate.Time).Seconds()
		m.LagSeconds = plugins.Float64(max(lag, 0))
	}
}

// roleOf maps a replica set member state to a role.
func roleOf(state int) plugins.Role {
	switch state {
	case 1: // PRIMARY
		return plugins.RolePrimary
	case 2, 0, 3, 5, 9: // SECONDARY, STARTUP, RECOVERING, STARTUP2, ROLLBACK
		return plugins.RoleReplica
	case 7: // ARBITER
		return plugins.RoleArbiter
	default: // DOWN, UNKNOWN, REMOVED
		return plugins.RoleUnknown
	}
}

// Healthy implements plugins.Engine: every member answered, exactly one
// primary, every data-bearing member PRIMARY or SECONDARY (arbiters
// ARBITER) and healthy from the primary's view, and optime lag within the
// bound. MongoDB has no lag in bytes, so a byte bound cannot be met.
func (e *Engine) Healthy(members []plugins.Member, opts plugins.HealthOptions) (bool, string) {
	if r := plugins.ReplicationReason(members); r != "" {
		return false, r
	}
	var problems plugins.Problems
	for _, m := range members {
		switch m.Role {
		case plugins.RolePrimary:
		case plugins.RoleArbiter:
			if m.State != "ARBITER" {
				problems.Addf("%s is %s", m.Pod, m.State)
			}
		case plugins.RoleReplica:
			switch {
			case m.State != "SECONDARY":
				problems.Addf("%s is %s, not SECONDARY", m.Pod, m.State)
			case m.Details["health"] != "":
				problems.Addf("%s is %s", m.Pod, m.Details["health"])
			default:
				problems.Add(plugins.LagReason(m, opts))
			}
		default:
			problems.Addf("%s is %s", m.Pod, m.State)
		}
	}
	return problems.Verdict()
}

// RemovePlan is what BeforeRemove will do: run rs.remove(Host) on the
// primary pod.
type RemovePlan struct {
	Primary string
	Host    string
}

// PlanRemove decides, from the members and views, how to remove ordinal's
// pod from the replica set. A nil plan with a nil error means the pod is
// not a member (already removed).
func PlanRemove(members []plugins.Member, views map[string]ReplSetStatus, pods []*corev1.Pod, pod string, ordinal int) (*RemovePlan, error) {
	if err := plugins.RefusePrimary(members, ordinal); err != nil {
		return nil, err
	}
	primaryPod, auth, ok := Authority(views)
	if !ok || auth.MyState != 1 {
		return nil, fmt.Errorf("no pod answered as the replica set's primary: rs.remove(%s) must run on the primary; "+
			"fix the replica set or pass --engine none to skip the engine steps", pod)
	}
	for _, rm := range auth.Members {
		if PodOfHost(rm.Name, pods) != pod {
			continue
		}
		if rm.State == 1 {
			return nil, fmt.Errorf("pod %s (%s) is the primary: step it down (rs.stepDown()) first", pod, rm.Name)
		}
		if err := ValidateHost(rm.Name); err != nil {
			return nil, err
		}
		return &RemovePlan{Primary: primaryPod, Host: rm.Name}, nil
	}
	return nil, nil
}

// BeforeRemove implements plugins.Engine: it refuses to remove the
// primary, then runs rs.remove(host) on the primary so the set's
// majority no longer counts the member that is going away.
func (e *Engine) BeforeRemove(ctx context.Context, t plugins.Target, ordinal int, opts plugins.RemoveOptions) error {
	members, views, err := e.read(ctx, t)
	if err != nil {
		return err
	}
	pod := t.PodName(ordinal)
	plan, err := PlanRemove(members, views, t.Pods, pod, ordinal)
	if err != nil {
		return err
	}
	if plan == nil {
		opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionSkipped,
			Message: fmt.Sprintf("pod %s is not a member of the replica set (already removed)", pod)})
		return nil
	}
	if opts.DryRun {
		opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionChanged, Pod: plan.Primary, Object: "member " + plan.Host,
			Message: fmt.Sprintf("would run rs.remove(%q) on %s", plan.Host, plan.Primary)})
		return nil
	}
	var primary *corev1.Pod
	for _, p := range t.Pods {
		if p.Name == plan.Primary {
			primary = p
		}
	}
	if primary == nil {
		return fmt.Errorf("primary pod %s vanished", plan.Primary)
	}
	out, err := t.Run(ctx, primary, t.ContainerFor(primary, e.Matches), "mongosh", command(removeJS(plan.Host)))
	if err != nil {
		return fmt.Errorf("rs.remove(%q) on %s: %w", plan.Host, plan.Primary, err)
	}
	var res struct {
		OK float64 `json:"ok"`
	}
	text := strings.TrimSpace(string(out))
	if i := strings.LastIndex(text, "{"); i >= 0 {
		text = text[i:]
	}
	if err := json.Unmarshal([]byte(text), &res); err != nil || res.OK != 1 {
		return fmt.Errorf("rs.remove(%q) on %s did not answer ok: %s", plan.Host, plan.Primary, strings.TrimSpace(string(out)))
	}
	opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionChanged, Pod: plan.Primary, Object: "member " + plan.Host,
		Message: fmt.Sprintf("removed %s from replica set %s (rs.remove on %s)", plan.Host, views[plan.Primary].Set, plan.Primary)})
	return nil
}

// AfterRemove implements plugins.Engine: nothing left to do once
// rs.remove ran.
func (e *Engine) AfterRemove(context.Context, plugins.Target, int, plugins.RemoveOptions) error {
	return nil
}
