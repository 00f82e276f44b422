// Package redis is the Redis and Valkey engine: roles, link status and
// replication offsets from INFO (lag in bytes is the primary's offset
// minus the replica's), and, in cluster mode, a refusal to remove a node
// that still owns hash slots.
package redis

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-sts/kubectl-sts/plugins"
)

// Name is the engine's --engine value.
const Name = "redis"

// cliScript runs redis-cli (or valkey-cli) with the container's own
// secrets: redis-cli reads REDISCLI_AUTH itself; the Bitnami images'
// REDIS_PASSWORD / VALKEY_PASSWORD fill it when unset, so the password is
// never an argument. The port is the Bitnami images' REDIS_PORT_NUMBER /
// VALKEY_PORT_NUMBER, else 6379. The command comes in as positional
// parameters.
const cliScript = `if [ -z "${REDISCLI_AUTH:-}" ]; then REDISCLI_AUTH="${REDIS_PASSWORD:-${VALKEY_PASSWORD:-}}"; fi
if [ -n "$REDISCLI_AUTH" ]; then export REDISCLI_AUTH; else unset REDISCLI_AUTH; fi
port="${REDIS_PORT_NUMBER:-${VALKEY_PORT_NUMBER:-6379}}"
if command -v redis-cli >/dev/null 2>&1; then cli=redis-cli; else cli=valkey-cli; fi
exec "$cli" --no-auth-warning -p "$port" "$@"`

func command(args ...string) []string {
	return append([]string{"sh", "-c", cliScript, "redis-cli"}, args...)
}

// Engine is the Redis/Valkey engine.
type Engine struct{}

// New returns the engine.
func New() *Engine { return &Engine{} }

var _ plugins.Engine = (*Engine)(nil)

// Name implements plugins.Engine.
func (e *Engine) Name() string { return Name }

// LagUnits implements plugins.LagMeasurer: the replication offset: bytes only.
func (e *Engine) LagUnits() plugins.LagUnits { return plugins.LagUnits{Bytes: true, Seconds: false} }

// Aliases implements plugins.Aliased.
func (e *Engine) Aliases() []string { return []string{"valkey"} }

// Matches implements plugins.Engine: redis, redis-cluster, redis-stack
// and valkey images (not sentinels or exporters).
func (e *Engine) Matches(image string) bool {
	return plugins.MatchImage(image, "redis", "valkey")
}

// ParseInfo parses INFO output into field → value.
func ParseInfo(out string) map[string]string {
	info := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			info[k] = v
		}
	}
	return info
}

// replyError reports an error reply printed by redis-cli, which exits 0
// on them when not on a terminal.
func replyError(out string) error {
	first, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	for _, p := range []string{"ERR", "NOAUTH", "WRONGPASS", "NOPERM", "LOADING", "MASTERDOWN", "(error)"} {
		if strings.HasPrefix(first, p) {
			return fmt.Errorf("redis answered: %s", strings.TrimSpace(first))
		}
	}
	return nil
}

func (e *Engine) run(ctx context.Context, t plugins.Target, pod *corev1.Pod, args ...string) (string, error) {
	out, err := t.Run(ctx, pod, t.ContainerFor(pod, e.Matches), "redis-cli", command(args...))
	if err != nil {
		return "", err
	}
	if err := replyError(string(out)); err != nil {
		return "", fmt.Errorf("pod %s: %w", pod.Name, err)
	}
	return string(out), nil
}

// Members implements plugins.Engine.
func (e *Engine) Members(ctx context.Context, t plugins.Target) ([]plugins.Member, error) {
	members, _, err := e.read(ctx, t)
	return members, err
}

func (e *Engine) read(ctx context.Context, t plugins.Target) ([]plugins.Member, map[string]map[string]string, error) {
	var mu sync.Mutex
	infos := map[string]map[string]string{}
	members, err := plugins.QueryPods(ctx, t, func(ctx context.Context, pod *corev1.Pod) (plugins.Member, error) {
		out, err := e.run(ctx, t, pod, "INFO")
		if err != nil {
			return plugins.Member{}, err
		}
		info := ParseInfo(out)
		if info["role"] == "" {
			return plugins.Member{}, fmt.Errorf("pod %s: INFO has no role field", pod.Name)
		}
		mu.Lock()
		infos[pod.Name] = info
		mu.Unlock()
		return plugins.Member{}, nil
	})
	Assemble(members, infos)
	return members, infos, err
}

// Assemble fills members from their INFO fields. A replica's lag in bytes
// is its primary's master_repl_offset minus its own slave_repl_offset; its
// primary is the answering primary with the same replication ID.
func Assemble(members []plugins.Member, infos map[string]map[string]string) {
	primaries := map[string]map[string]string{} // by master_replid
	for _, info := range infos {
		if info["role"] == "master" {
			primaries[info["master_replid"]] = info
		}
	}
	for i := range members {
		m := &members[i]
		info, ok := infos[m.Pod]
		if !ok {
			continue
		}
		m.Details = map[string]string{}
		copyField(m.Details, info, "redis_version", "version")
		copyField(m.Details, info, "valkey_version", "version")
		copyField(m.Details, info, "master_repl_offset", "offset")
		if info["cluster_enabled"] == "1" {
			m.Details["cluster"] = "enabled"
		}
		switch info["role"] {
		case "master":
			m.Role = plugins.RolePrimary
			m.State = "master"
			copyField(m.Details, info, "connected_slaves", "connectedReplicas")
		case "slave":
			m.Role = plugins.RoleReplica
			m.State = "link " + orDash(info["master_link_status"])
			if info["master_sync_in_progress"] == "1" {
				m.State = "syncing"
			}
			m.Details["source"] = info["master_host"] + ":" + info["master_port"]
			copyField(m.Details, info, "slave_repl_offset", "offset")
			copyField(m.Details, info, "master_last_io_seconds_ago", "lastIOSecondsAgo")
			copyField(m.Details, info, "slave_read_only", "readOnly")
			if p, ok := primaries[info["master_replid"]]; ok && info["master_link_status"] == "up" {
				po, err1 := strconv.ParseInt(p["master_repl_offset"], 10, 64)
				ro, err2 := strconv.ParseInt(info["slave_repl_offset"], 10, 64)
				if err1 == nil && err2 == nil {
					m.LagBytes = plugins.Int64(max(po-ro, 0))
				}
			}
		default:
			m.Role = plugins.RoleUnknown
			m.State = info["role"]
		}
	}
}

func copyField(dst, info map[string]string, from, to string) {
	if v, ok := info[from]; ok && v != "" {
		dst[to] = v
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func otherRole(m plugins.Member) string { return fmt.Sprintf("%s has role %s", m.Pod, m.State) }

// linkDown says that replica m's link to its primary is not up; "" when it
// is.
func linkDown(m plugins.Member) string {
	if m.State == "link up" {
		return ""
	}
	return fmt.Sprintf("%s replication %s", m.Pod, m.State)
}

// Healthy implements plugins.Engine: every member answered; outside
// cluster mode exactly one primary; every replica's link up and not
// syncing; lag in bytes within the bound. Redis measures no lag in
// seconds, so a seconds bound cannot be met.
func (e *Engine) Healthy(members []plugins.Member, opts plugins.HealthOptions) (bool, string) {
	if r := plugins.Unanswered(members); r != "" {
		return false, r
	}
	cluster := false
	for _, m := range members {
		if m.Details["cluster"] == "enabled" {
			cluster = true
		}
	}
	if cluster {
		if len(plugins.Primaries(members)) == 0 {
			return false, "no member is primary"
		}
	} else if r := plugins.PrimaryReason(members); r != "" {
		return false, r
	}
	var problems plugins.Problems
	problems.AddReplicas(members, opts, otherRole, linkDown)
	return problems.Verdict()
}

// ClusterNode is one line of CLUSTER NODES.
type ClusterNode struct {
	ID     string
	Addr   string
	Flags  []string
	Slots  []string
	Myself bool
	Master bool
}

// ParseClusterNodes parses CLUSTER NODES output.
func ParseClusterNodes(out string) ([]ClusterNode, error) {
	var nodes []ClusterNode
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 8 {
			return nil, fmt.Errorf("unexpected CLUSTER NODES line %q", line)
		}
		n := ClusterNode{ID: f[0], Addr: f[1], Flags: strings.Split(f[2], ","), Slots: f[8:]}
		for _, fl := range n.Flags {
			switch fl {
			case "myself":
				n.Myself = true
			case "master":
				n.Master = true
			}
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

// BeforeRemove implements plugins.Engine. Outside cluster mode it refuses
// to remove the primary. In cluster mode it refuses to remove a node that
// owns hash slots (reshard them away first) and names the node ID to
// forget afterwards.
func (e *Engine) BeforeRemove(ctx context.Context, t plugins.Target, ordinal int, opts plugins.RemoveOptions) error {
	members, infos, err := e.read(ctx, t)
	if err != nil {
		return err
	}
	pod := t.PodName(ordinal)
	_, answered := infos[pod]
	cluster := false
	for _, i := range infos {
		cluster = cluster || i["cluster_enabled"] == "1"
	}
	if cluster && !answered {
		m, ok := plugins.FindMember(members, ordinal)
		if !ok {
			opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionSkipped, Message: fmt.Sprintf("pod %s does not exist", pod)})
			return nil
		}
		return fmt.Errorf("cannot tell whether pod %s owns hash slots of the cluster (%s): fix it, or reshard and pass --engine none", pod, m.Error)
	}
	if !cluster {
		if err := plugins.RefusePrimary(members, ordinal); err != nil {
			return err
		}
		if _, ok := plugins.FindMember(members, ordinal); ok {
			opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionChecked, Pod: pod,
				Message: plugins.NotPrimaryMessage(members, ordinal)})
		}
		return nil
	}
	out, err := e.run(ctx, t, t.Pod(ordinal), "CLUSTER", "NODES")
	if err != nil {
		return fmt.Errorf("reading the cluster nodes from pod %s: %w", pod, err)
	}
	nodes, err := ParseClusterNodes(out)
	if err != nil {
		return fmt.Errorf("pod %s: %w", pod, err)
	}
	for _, n := range nodes {
		if !n.Myself {
			continue
		}
		if n.Master && len(n.Slots) > 0 {
			return fmt.Errorf("pod %s is cluster node %s and owns hash slots %s: move them to nodes that stay "+
				"(redis-cli --cluster reshard) before scaling down", pod, n.ID, strings.Join(n.Slots, " "))
		}
		opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionChecked, Pod: pod, Object: "node " + n.ID,
			Message: fmt.Sprintf("pod %s is cluster node %s and owns no hash slots; after removal, forget it on the nodes that stay "+
				"(redis-cli --cluster del-node <host:port> %s)", pod, n.ID, n.ID)})
		return nil
	}
	return fmt.Errorf("pod %s: CLUSTER NODES has no line for the node itself", pod)
}

// AfterRemove implements plugins.Engine: nothing to clean up.
func (e *Engine) AfterRemove(context.Context, plugins.Target, int, plugins.RemoveOptions) error {
	return nil
}
