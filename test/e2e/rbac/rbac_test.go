// Package rbac proves docs/rbac.yaml end to end against the real control
// plane of the test bed, with RBAC authorization on: each command runs
// in-process as a user that holds only the Role of that command (and the
// ClusterRole kubectl-sts-cluster-read where the command needs it), and
// must finish without a single request the API server refused.
package rbac

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-sts/kubectl-sts/pkg/cmd"
	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/test/e2e/e2eutil"
	"github.com/kubectl-sts/kubectl-sts/test/testbed"
)

var cluster *testbed.Cluster

func TestMain(m *testing.M) {
	os.Exit(testbed.Main(m, testbed.Options{Name: "e2e-rbac"}, &cluster))
}

// generous bounds every wait and every command; a passing run stays far
// below it.
const generous = 4 * time.Minute

var poll = e2eutil.Poll{Timeout: generous}

const (
	imageV1     = "registry.example/app:v1"
	imageV2     = "registry.example/app:v2"
	imageBroken = "registry.example/app:broken"

	// The names in docs/rbac.yaml.
	roleStatus      = "kubectl-sts-status"
	roleRollout     = "kubectl-sts-rollout"
	roleScaleDown   = "kubectl-sts-scale-down"
	roleExpandPVC   = "kubectl-sts-expand-pvc"
	clusterReadRole = "kubectl-sts-cluster-read"
)

// manifest is docs/rbac.yaml, parsed.
type manifest struct {
	roles        map[string]rbacv1.Role
	clusterRoles map[string]rbacv1.ClusterRole
}

// loadManifest reads docs/rbac.yaml. Every document must be a Role or a
// ClusterRole of rbac.authorization.k8s.io/v1.
func loadManifest(t *testing.T) manifest {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "..", "docs", "rbac.yaml"))
	require.NoError(t, err)
	defer f.Close()
	m := manifest{roles: map[string]rbacv1.Role{}, clusterRoles: map[string]rbacv1.ClusterRole{}}
	r := utilyaml.NewYAMLReader(bufio.NewReader(f))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		var tm metav1.TypeMeta
		require.NoError(t, utilyaml.Unmarshal(doc, &tm))
		if tm.Kind == "" {
			continue // comments only
		}
		require.Equal(t, rbacv1.SchemeGroupVersion.String(), tm.APIVersion, string(doc))
		switch tm.Kind {
		case "Role":
			var role rbacv1.Role
			require.NoError(t, yaml.UnmarshalStrict(doc, &role), "docs/rbac.yaml")
			require.Empty(t, role.Namespace, "role %s: the manifest is applied with -n, it names no namespace", role.Name)
			m.roles[role.Name] = role
		case "ClusterRole":
			var cr rbacv1.ClusterRole
			require.NoError(t, yaml.UnmarshalStrict(doc, &cr), "docs/rbac.yaml")
			m.clusterRoles[cr.Name] = cr
		default:
			t.Fatalf("docs/rbac.yaml: unexpected kind %q", tm.Kind)
		}
	}
	for _, name := range []string{roleStatus, roleRollout, roleScaleDown, roleExpandPVC} {
		require.Contains(t, m.roles, name)
	}
	require.Contains(t, m.clusterRoles, clusterReadRole)
	return m
}

func TestManifestNeverGrantsSecretsOrWildcards(t *testing.T) {
	m := loadManifest(t)
	var rules []rbacv1.PolicyRule
	for _, r := range m.roles {
		rules = append(rules, r.Rules...)
	}
	for _, r := range m.clusterRoles {
		rules = append(rules, r.Rules...)
	}
	for _, rule := range rules {
		for _, list := range [][]string{rule.APIGroups, rule.Resources, rule.Verbs} {
			assert.NotContains(t, list, "*", "rule %+v", rule)
		}
		assert.NotContains(t, rule.Resources, "secrets", "rule %+v", rule)
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), generous)
	t.Cleanup(cancel)
	return ctx
}

// applyRoles creates every Role of the manifest in ns, as
// `kubectl apply -n NS -f docs/rbac.yaml` would.
func applyRoles(t *testing.T, m manifest, ns string) {
	t.Helper()
	for _, role := range m.roles {
		role.Namespace = ns
		_, err := cluster.Client.RbacV1().Roles(ns).Create(ctxFor(t), &role, metav1.CreateOptions{})
		require.NoError(t, err)
	}
}

// createClusterRole creates a copy of a ClusterRole under a name unique to
// the test (ClusterRoles outlive namespaces), binds it to user with a
// ClusterRoleBinding and deletes both when the test ends. It returns the
// copy.
func createClusterRole(t *testing.T, ns, user string, cr rbacv1.ClusterRole) rbacv1.ClusterRole {
	t.Helper()
	ctx := ctxFor(t)
	cr = rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: cr.Name + "-" + ns}, Rules: cr.Rules}
	_, err := cluster.Client.RbacV1().ClusterRoles().Create(ctx, &cr, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cluster.Client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: cr.Name + "-" + user},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: cr.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, err := range []error{
			cluster.Client.RbacV1().ClusterRoleBindings().Delete(ctx, cr.Name+"-"+user, metav1.DeleteOptions{}),
			cluster.Client.RbacV1().ClusterRoles().Delete(ctx, cr.Name, metav1.DeleteOptions{}),
		} {
			if err != nil && !apierrors.IsNotFound(err) {
				t.Logf("cleaning up clusterrole %s: %v", cr.Name, err)
			}
		}
	})
	return cr
}

// user is an identity the commands run as, through impersonation.
type user struct {
	name string
	ns   string
	cfg  *rest.Config
	rec  *recorder
	used map[string]bool // every permission its commands used so far
}

// grant binds the Role named role (from the manifest, already applied in
// ns) to a new user and, with clusterRead, the ClusterRole
// kubectl-sts-cluster-read too. It returns once the authorizer allows every
// rule of both, so the command never races the RBAC caches.
func grant(t *testing.T, m manifest, ns, name, role string, clusterRead bool) *user {
	t.Helper()
	ctx := ctxFor(t)
	_, err := cluster.Client.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role + "-" + name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: name}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	waitAllowed(t, name, ns, m.roles[role].Rules)
	if clusterRead {
		cr := createClusterRole(t, ns, name, m.clusterRoles[clusterReadRole])
		waitAllowed(t, name, "", cr.Rules)
	}
	return newUser(name, ns)
}

func newUser(name, ns string) *user {
	u := &user{name: name, ns: ns, rec: &recorder{}, used: map[string]bool{}}
	u.cfg = rest.CopyConfig(cluster.RESTConfig)
	u.cfg.Impersonate = rest.ImpersonationConfig{UserName: name}
	u.cfg.Wrap(u.rec.wrap)
	return u
}

// waitAllowed waits until a SubjectAccessReview allows user every verb of
// rules, in namespace ns ("" for cluster scope).
func waitAllowed(t *testing.T, userName, ns string, rules []rbacv1.PolicyRule) {
	t.Helper()
	var pending string
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, generous, true, func(ctx context.Context) (bool, error) {
		for _, rule := range rules {
			for _, group := range rule.APIGroups {
				for _, res := range rule.Resources {
					resName, sub, _ := strings.Cut(res, "/")
					for _, verb := range rule.Verbs {
						sar, err := cluster.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
							Spec: authorizationv1.SubjectAccessReviewSpec{
								User: userName,
								ResourceAttributes: &authorizationv1.ResourceAttributes{
									Namespace: ns, Verb: verb, Group: group, Resource: resName, Subresource: sub,
								},
							},
						}, metav1.CreateOptions{})
						if err != nil {
							return false, err
						}
						if !sar.Status.Allowed {
							pending = fmt.Sprintf("%s %s (group %q) in %q", verb, res, group, ns)
							return false, nil
						}
					}
				}
			}
		}
		return true, nil
	})
	require.NoError(t, err, "waiting for the authorizer to allow %s: %s", userName, pending)
}

// request is one permission an API request of a command needed, as RBAC
// sees it, and the answer (403: refused).
type request struct {
	perm string
	code int
}

// recorder keeps every API request made through a rest.Config.
type recorder struct {
	mu   sync.Mutex
	reqs []request
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func (r *recorder) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(req)
		perms := permissionsOf(req)
		code := 0
		if resp != nil {
			code = resp.StatusCode
		}
		// A refused WebSocket upgrade (pods/exec) is an error, not a
		// response; its message names the verb that was missing.
		refusedVerb := ""
		if err != nil && strings.Contains(err.Error(), "is forbidden") {
			code = http.StatusForbidden
			if m := refusedVerbRE.FindStringSubmatch(err.Error()); m != nil {
				refusedVerb = m[1]
			}
		}
		r.mu.Lock()
		for _, p := range perms {
			c := code
			if refusedVerb != "" && !strings.HasPrefix(p, refusedVerb+" ") {
				c = 0
			}
			r.reqs = append(r.reqs, request{perm: p, code: c})
		}
		r.mu.Unlock()
		return resp, err
	})
}

var refusedVerbRE = regexp.MustCompile(`cannot (\S+) resource`)

// reset forgets the requests recorded so far.
func (r *recorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = nil
}

// perms returns the distinct permissions used, and those refused (403).
func (r *recorder) perms() (used, forbidden []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	u, f := map[string]bool{}, map[string]bool{}
	for _, q := range r.reqs {
		u[q.perm] = true
		if q.code == http.StatusForbidden {
			f[q.perm] = true
		}
	}
	return sortedKeys(u), sortedKeys(f)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// permissionsOf maps a resource request to the RBAC verbs and resource it
// needs, e.g. "list pods" or "patch statefulsets.apps", with " (cluster)"
// at the cluster scope; none for a non-resource request (discovery).
func permissionsOf(req *http.Request) []string {
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	var group string
	switch {
	case len(parts) >= 3 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 4 && parts[0] == "apis":
		group, parts = parts[1], parts[3:]
	default:
		return nil
	}
	scope := " (cluster)"
	if len(parts) >= 3 && parts[0] == "namespaces" {
		scope, parts = "", parts[2:]
	}
	res := parts[0]
	if group != "" {
		res += "." + group
	}
	named := len(parts) >= 2
	sub := ""
	if len(parts) >= 3 {
		sub = parts[2]
		res += "/" + sub
	}
	var verbs []string
	switch req.Method {
	case http.MethodGet, http.MethodHead:
		switch {
		case req.URL.Query().Get("watch") == "true" || req.URL.Query().Get("watch") == "1":
			verbs = []string{"watch"}
		case sub == "exec" || sub == "attach" || sub == "portforward":
			// A WebSocket upgrade: the API server checks get, and since
			// Kubernetes 1.35 create too.
			verbs = []string{"get", "create"}
		case named:
			verbs = []string{"get"}
		default:
			verbs = []string{"list"}
		}
	case http.MethodPost:
		verbs = []string{"create"}
	case http.MethodPut:
		verbs = []string{"update"}
	case http.MethodPatch:
		verbs = []string{"patch"}
	case http.MethodDelete:
		verbs = []string{"delete"}
		if !named {
			verbs = []string{"deletecollection"}
		}
	default:
		verbs = []string{strings.ToLower(req.Method)}
	}
	out := make([]string, len(verbs))
	for i, v := range verbs {
		out[i] = v + " " + res + scope
	}
	return out
}

type result struct {
	code        int
	out, errOut string
	used        []string
	forbidden   []string
}

// run executes `kubectl sts args...` in-process as u, in u's namespace,
// with the real clock.
func run(t *testing.T, u *user, args ...string) result {
	t.Helper()
	return runWith(t, u, ctxFor(t), nil, args...)
}

// outputWriter is a standard output a test reads while the command runs.
type outputWriter interface {
	io.Writer
	String() string
}

// runWith is run with a context of its own and, when out is not nil, the
// command's standard output going to out.
func runWith(t *testing.T, u *user, ctx context.Context, out outputWriter, args ...string) result {
	t.Helper()
	f := e2eutil.Fake(e2eutil.ClientFor(t, u.ns, u.cfg))
	if out != nil {
		f.Options.Out = out
	}
	u.rec.reset()
	code := cmd.Run(ctx, f.Options, args)
	res := result{code: code, errOut: f.ErrOut.String()}
	if out != nil {
		res.out = out.String()
	} else {
		res.out = f.Out.String()
	}
	res.used, res.forbidden = u.rec.perms()
	for _, p := range res.used {
		u.used[p] = true
	}
	t.Logf("as %s: kubectl sts %s -> exit %d\n%s%s\nrequests: %s\nforbidden: %v",
		u.name, strings.Join(args, " "), code, res.out, res.errOut, strings.Join(res.used, ", "), res.forbidden)
	return res
}

// requireClean fails unless the command exited with want, the API server
// refused none of its requests and no output speaks of a missing
// permission (best-effort steps turn a refusal into a warning).
func requireClean(t *testing.T, res result, want int) {
	t.Helper()
	require.Equal(t, want, res.code, "exit code\n%s%s", res.out, res.errOut)
	assert.Empty(t, res.forbidden, "requests the API server refused")
	for _, s := range []string{"forbidden", "missing permission", "cannot list", "cannot read", "could not record"} {
		assert.NotContains(t, strings.ToLower(res.out+res.errOut), s)
	}
}

// newStatefulSet returns a StatefulSet whose image no engine claims, with
// one claim template of 1Gi in class (the test bed's default when empty).
func newStatefulSet(ns, name string, replicas int32, class string) *appsv1.StatefulSet {
	s := e2eutil.NewStatefulSet(ns, name, replicas, imageV1, "data")
	if class != "" {
		s.Spec.VolumeClaimTemplates[0].Spec.StorageClassName = ptr.To(class)
	}
	return s
}

// create makes the StatefulSet (as the cluster admin) and waits until all
// its pods are Ready on one revision.
func create(t *testing.T, sts *appsv1.StatefulSet) {
	t.Helper()
	_, err := cluster.Client.AppsV1().StatefulSets(sts.Namespace).Create(ctxFor(t), sts, metav1.CreateOptions{})
	require.NoError(t, err)
	poll.WaitSettled(t, cluster.Client, sts.Namespace, sts.Name)
}

func getSTS(t *testing.T, ns, name string) *appsv1.StatefulSet {
	t.Helper()
	s, err := cluster.Client.AppsV1().StatefulSets(ns).Get(ctxFor(t), name, metav1.GetOptions{})
	require.NoError(t, err)
	return s
}

// objects is the identity and version of what a command could change:
// the StatefulSet, its pods and claims, and the operation records.
func objects(t *testing.T, ns string) map[string]string {
	t.Helper()
	ctx := ctxFor(t)
	out := map[string]string{}
	sets, err := cluster.Client.AppsV1().StatefulSets(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	for _, s := range sets.Items {
		out["statefulset/"+s.Name] = fmt.Sprintf("%s replicas=%d generation=%d", s.UID, *s.Spec.Replicas, s.Generation)
	}
	pods, err := cluster.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	for _, p := range pods.Items {
		out["pod/"+p.Name] = fmt.Sprintf("%s deleting=%t", p.UID, p.DeletionTimestamp != nil)
	}
	pvcs, err := cluster.Client.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	for _, c := range pvcs.Items {
		out["pvc/"+c.Name] = fmt.Sprintf("%s deleting=%t", c.UID, c.DeletionTimestamp != nil)
	}
	cms, err := cluster.Client.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{LabelSelector: journal.LabelManagedBy + "=" + journal.ManagedBy})
	require.NoError(t, err)
	for _, c := range cms.Items {
		out["configmap/"+c.Name] = c.ResourceVersion
	}
	return out
}

// frameWriter is the standard output of `status --watch`: it cancels the
// command once a whole frame (up to its verdict) was printed.
type frameWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	cancel func()
}

func (w *frameWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	if strings.Contains(w.buf.String(), "Verdict:") {
		w.cancel()
	}
	return n, err
}

func (w *frameWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// assertEveryRuleUsed fails for each verb of rules (in namespace scope, or
// at the cluster scope with clusterScope) that no command of u used, unless
// conditional explains when the commands use it. A permission nothing
// needs does not belong in docs/rbac.yaml.
func assertEveryRuleUsed(t *testing.T, u *user, rules []rbacv1.PolicyRule, clusterScope bool, conditional map[string]string) {
	t.Helper()
	suffix := ""
	if clusterScope {
		suffix = " (cluster)"
	}
	for _, rule := range rules {
		for _, group := range rule.APIGroups {
			for _, res := range rule.Resources {
				name, sub, _ := strings.Cut(res, "/")
				if group != "" {
					name += "." + group
				}
				if sub != "" {
					name += "/" + sub
				}
				for _, verb := range rule.Verbs {
					perm := verb + " " + name + suffix
					if why, ok := conditional[perm]; ok {
						t.Logf("%s: not exercised here (%s)", perm, why)
						continue
					}
					// Informers list through their watch where the API server
					// streams lists (WatchList); elsewhere they call list.
					if verb == "list" && u.used["watch "+name+suffix] {
						continue
					}
					assert.True(t, u.used[perm], "%s is granted but no command used it; used: %v", perm, sortedKeys(u.used))
				}
			}
		}
	}
}

// engineOnly are the permissions only a database engine uses; the
// StatefulSets here run an image no engine claims.
var engineOnly = map[string]string{
	"get pods/exec":    "database engines only",
	"create pods/exec": "database engines only",
}

func TestStatusRole(t *testing.T) {
	m := loadManifest(t)
	ns := cluster.NewNamespace(t)
	applyRoles(t, m, ns)
	create(t, newStatefulSet(ns, "db", 2, ""))
	u := grant(t, m, ns, "status-user", roleStatus, false)

	res := run(t, u, "status", "db")
	requireClean(t, res, cmdutil.ExitOK)
	assert.Contains(t, res.out, "Verdict: Healthy")

	res = run(t, u, "status")
	requireClean(t, res, cmdutil.ExitOK)
	assert.Regexp(t, `(?m)^db\s+2/2\s`, res.out)

	// --watch ends with exit 0 when interrupted; here after its first frame.
	ctx, cancel := context.WithTimeout(ctxFor(t), generous)
	defer cancel()
	w := &frameWriter{cancel: cancel}
	res = runWith(t, u, ctx, w, "status", "db", "--watch")
	requireClean(t, res, cmdutil.ExitOK)
	assert.Contains(t, res.out, "Verdict: Healthy")

	assertEveryRuleUsed(t, u, m.roles[roleStatus].Rules, false, engineOnly)

	// -A reads every namespace: the namespaced Role is not enough, and the
	// command names what is missing.
	res = run(t, u, "status", "-A")
	assert.Equal(t, cmdutil.ExitFailed, res.code, res.out)
	assert.Contains(t, res.errOut, "at the cluster scope (all namespaces)")

	// The same rules in a ClusterRole bound by a ClusterRoleBinding are.
	cr := createClusterRole(t, ns, u.name, rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "kubectl-sts-status-all-namespaces"}, Rules: m.roles[roleStatus].Rules,
	})
	waitAllowed(t, u.name, "", cr.Rules)
	res = run(t, u, "status", "-A")
	// Other tests' StatefulSets may be mid-change: 3 is a verdict, not a failure.
	require.Contains(t, []int{cmdutil.ExitOK, cmdutil.ExitDegraded}, res.code, res.errOut)
	assert.Empty(t, res.forbidden)
	assert.Regexp(t, `(?m)^`+ns+`\s+db\s+2/2\s`, res.out)
}

func TestStatusUserCannotScaleDown(t *testing.T) {
	m := loadManifest(t)
	ns := cluster.NewNamespace(t)
	applyRoles(t, m, ns)
	create(t, newStatefulSet(ns, "db", 3, ""))
	u := grant(t, m, ns, "status-user", roleStatus, false)
	before := objects(t, ns)

	res := run(t, u, "scale-down", "db", "--replicas", "1", "--pvc", "delete", "--yes", "--engine", "none")
	assert.NotEqual(t, cmdutil.ExitOK, res.code)
	assert.NotEmpty(t, res.forbidden)
	msg := strings.ToLower(res.errOut)
	assert.True(t, strings.Contains(msg, "forbidden") || strings.Contains(msg, "missing permission"), res.errOut)
	assert.Contains(t, res.errOut, "docs/rbac.md")

	// Nothing changed, also a moment later.
	time.Sleep(2 * time.Second)
	assert.Equal(t, before, objects(t, ns))
	assert.Equal(t, int32(3), *getSTS(t, ns, "db").Spec.Replicas)
}

func TestRolloutRole(t *testing.T) {
	m := loadManifest(t)
	ns := cluster.NewNamespace(t)
	applyRoles(t, m, ns)
	create(t, newStatefulSet(ns, "db", 3, ""))
	u := grant(t, m, ns, "rollout-user", roleRollout, false)

	// --gate-exec goes through pods/exec: the test bed runs the command
	// locally, in dir.
	dir := t.TempDir()
	require.NoError(t, cluster.MapExec(ctxFor(t), testbed.ExecMapping{Namespace: ns, WorkDir: dir}))
	poll.Until(t, "exec mapping in effect", func(ctx context.Context) (bool, error) {
		for i := 0; i < 3; i++ {
			if _, err := cluster.Kubectl(ctx, "exec", "-n", ns, fmt.Sprintf("db-%d", i), "--", "true"); err != nil {
				return false, nil
			}
		}
		return true, nil
	})

	res := run(t, u, "rollout", "db", "--staged", "--image", "app="+imageV2, "--steps", "1,100%", "--gate-exec", "echo ran >> gate.txt", "--yes")
	requireClean(t, res, cmdutil.ExitOK)
	assert.Contains(t, res.used, "create pods/exec")
	ran, err := os.ReadFile(filepath.Join(dir, "gate.txt"))
	require.NoError(t, err)
	assert.Equal(t, 3, bytes.Count(ran, []byte("ran")), "the exec gate ran once in each pod")
	poll.WaitSettled(t, cluster.Client, ns, "db")
	good := getSTS(t, ns, "db")
	assert.Equal(t, imageV2, good.Spec.Template.Spec.Containers[0].Image)

	res = run(t, u, "rollout", "status", "db")
	requireClean(t, res, cmdutil.ExitOK)

	// A broken image fails the first step and is rolled back, which
	// deletes the broken pod and restores the previous ControllerRevision.
	res = run(t, u, "rollout", "db", "--staged", "--image", "app="+imageBroken, "--step-timeout", "10s", "--yes")
	requireClean(t, res, cmdutil.ExitRolledBack)
	assert.Contains(t, res.errOut, "rolled back to revision "+good.Status.CurrentRevision)
	assert.Contains(t, res.used, "delete pods", "the rollback replaced the broken pod")
	assert.Contains(t, res.used, "list controllerrevisions.apps")
	poll.WaitSettled(t, cluster.Client, ns, "db")
	sts := getSTS(t, ns, "db")
	assert.Equal(t, imageV2, sts.Spec.Template.Spec.Containers[0].Image, "the previous template is back")
	assert.Equal(t, good.Status.CurrentRevision, sts.Status.CurrentRevision)

	assertEveryRuleUsed(t, u, m.roles[roleRollout].Rules, false, map[string]string{
		"create pods/eviction": "the ZooKeeper engine's leader handoff only",
	})
}

func TestExpandPVCRole(t *testing.T) {
	m := loadManifest(t)
	ns := cluster.NewNamespace(t)
	applyRoles(t, m, ns)
	create(t, newStatefulSet(ns, "db", 2, "testbed-offline"))
	oldUID := getSTS(t, ns, "db").UID
	u := grant(t, m, ns, "expand-user", roleExpandPVC, true)

	// Offline storage: each pod is restarted to finish its claim's resize.
	res := run(t, u, "expand-pvc", "db", "--size", "2Gi", "--yes", "--online-resize-wait", "3s")
	requireClean(t, res, cmdutil.ExitOK)
	assert.Contains(t, res.used, "get storageclasses.storage.k8s.io (cluster)")
	assert.Contains(t, res.used, "create pods/eviction", "pods are restarted by eviction")
	assert.NotContains(t, res.used, "delete pods", "pods are not deleted without --disable-eviction")

	for i := 0; i < 2; i++ {
		c, err := cluster.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctxFor(t), fmt.Sprintf("data-db-%d", i), metav1.GetOptions{})
		require.NoError(t, err)
		capacity := c.Status.Capacity[corev1.ResourceStorage]
		assert.Equal(t, "2Gi", capacity.String(), c.Name)
	}
	// The template step recreated the StatefulSet with the new size, and
	// it adopted the pods.
	sts := getSTS(t, ns, "db")
	assert.NotEqual(t, oldUID, sts.UID)
	size := sts.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests[corev1.ResourceStorage]
	assert.Equal(t, "2Gi", size.String())
	pods, err := cluster.Client.CoreV1().Pods(ns).List(ctxFor(t), metav1.ListOptions{})
	require.NoError(t, err)
	for _, p := range pods.Items {
		owner := metav1.GetControllerOf(&p)
		require.NotNil(t, owner, p.Name)
		assert.Equal(t, sts.UID, owner.UID, "%s adopted by the new StatefulSet", p.Name)
	}

	assertEveryRuleUsed(t, u, m.roles[roleExpandPVC].Rules, false, map[string]string{
		"get pods/exec":                    engineOnly["get pods/exec"],
		"create pods/exec":                 engineOnly["create pods/exec"],
		"delete pods":                      "--disable-eviction only",
		"get pods":                         "only to name the budget when a PodDisruptionBudget refuses an eviction",
		"list poddisruptionbudgets.policy": "only to name the budget when a PodDisruptionBudget refuses an eviction",
	})
	assertEveryRuleUsed(t, u, m.clusterRoles[clusterReadRole].Rules, true, map[string]string{
		"get volumesnapshotclasses.snapshot.storage.k8s.io (cluster)":  "scale-down and cleanup-pvcs --pvc snapshot only",
		"list volumesnapshotclasses.snapshot.storage.k8s.io (cluster)": "scale-down and cleanup-pvcs --pvc snapshot only, without --snapshot-class",
	})
}

// snapshotOnly are the permissions only --pvc snapshot uses; the test bed
// has no VolumeSnapshot API.
var snapshotOnly = map[string]string{
	"create volumesnapshots.snapshot.storage.k8s.io": "--pvc snapshot only",
	"get volumesnapshots.snapshot.storage.k8s.io":    "--pvc snapshot only",
	"list volumesnapshots.snapshot.storage.k8s.io":   "--pvc snapshot only",
	"watch volumesnapshots.snapshot.storage.k8s.io":  "--pvc snapshot only",
}

func TestScaleDownRole(t *testing.T) {
	m := loadManifest(t)
	ns := cluster.NewNamespace(t)
	applyRoles(t, m, ns)
	create(t, newStatefulSet(ns, "db", 3, ""))
	create(t, newStatefulSet(ns, "cache", 3, ""))
	u := grant(t, m, ns, "scale-down-user", roleScaleDown, false)

	res := run(t, u, "scale-down", "db", "--replicas", "1", "--pvc", "delete", "--yes", "--engine", "none")
	requireClean(t, res, cmdutil.ExitOK)
	assert.Contains(t, res.used, "delete persistentvolumeclaims")
	assert.Equal(t, int32(1), *getSTS(t, ns, "db").Spec.Replicas)
	assert.NotContains(t, e2eutil.ClaimNames(t, cluster.Client, ns), "data-db-1")
	assert.NotContains(t, e2eutil.ClaimNames(t, cluster.Client, ns), "data-db-2")
	assert.Contains(t, e2eutil.ClaimNames(t, cluster.Client, ns), "data-db-0")

	// A plain scale-down of cache leaves the claims of cache-1 and cache-2
	// behind; cleanup-pvcs deletes them.
	_, err := cluster.Client.AppsV1().StatefulSets(ns).Patch(ctxFor(t), "cache", types.MergePatchType, []byte(`{"spec":{"replicas":1}}`), metav1.PatchOptions{})
	require.NoError(t, err)
	poll.WaitSettled(t, cluster.Client, ns, "cache")
	poll.Until(t, "pods cache-1 and cache-2 gone", func(ctx context.Context) (bool, error) {
		pods, err := cluster.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=cache"})
		return err == nil && len(pods.Items) == 1, err
	})
	require.Subset(t, e2eutil.ClaimNames(t, cluster.Client, ns), []string{"data-cache-0", "data-cache-1", "data-cache-2"})

	res = run(t, u, "cleanup-pvcs", "cache", "--yes")
	requireClean(t, res, cmdutil.ExitOK)
	assert.Equal(t, []string{"data-cache-0", "data-db-0"}, e2eutil.ClaimNames(t, cluster.Client, ns))
	assert.Equal(t, int32(1), *getSTS(t, ns, "cache").Spec.Replicas)

	assertEveryRuleUsed(t, u, m.roles[roleScaleDown].Rules, false, mergeMaps(engineOnly, snapshotOnly))
}

func mergeMaps(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// A user who may scale the StatefulSet but not delete claims is refused
// before the first change, with the permission named: a run that scaled
// down and then met a Forbidden on the claims would stop part-way, its
// record holding the StatefulSet against every other command.
func TestScaleDownMissingAPermissionChangesNothing(t *testing.T) {
	m := loadManifest(t)
	ns := cluster.NewNamespace(t)
	create(t, newStatefulSet(ns, "db", 3, ""))
	var rules []rbacv1.PolicyRule
	for _, r := range m.roles[roleScaleDown].Rules {
		if slices.Contains(r.Resources, "persistentvolumeclaims") {
			r = *r.DeepCopy()
			r.Verbs = slices.DeleteFunc(r.Verbs, func(v string) bool { return v == "delete" })
		}
		rules = append(rules, r)
	}
	ctx := ctxFor(t)
	_, err := cluster.Client.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "scale-down-but-keep-claims"}, Rules: rules}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cluster.Client.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "scale-down-but-keep-claims"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "scale-down-but-keep-claims"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "keeper"}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	waitAllowed(t, "keeper", ns, rules)
	u := newUser("keeper", ns)
	before := objects(t, ns)

	res := run(t, u, "scale-down", "db", "--replicas", "1", "--pvc", "delete", "--yes", "--engine", "none")
	require.Equal(t, cmdutil.ExitFailed, res.code, "exit code\n%s%s", res.out, res.errOut)
	assert.Contains(t, res.errOut, "missing permission: delete persistentvolumeclaims in namespace "+ns)
	assert.Empty(t, res.forbidden, "refused before any request the API server would refuse")
	assert.Equal(t, before, objects(t, ns), "nothing changed, and no record was left")
	assert.Equal(t, int32(3), *getSTS(t, ns, "db").Spec.Replicas)

	// Keeping the claims needs no delete: the same user scales down.
	res = run(t, u, "scale-down", "db", "--replicas", "1", "--pvc", "keep", "--yes", "--engine", "none")
	requireClean(t, res, cmdutil.ExitOK)
	assert.Equal(t, int32(1), *getSTS(t, ns, "db").Spec.Replicas)
}
