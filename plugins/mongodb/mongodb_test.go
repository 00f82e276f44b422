package mongodb

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/pkg/kube/kubefake"
	"github.com/kubectl-sts/kubectl-sts/plugins"
	"github.com/kubectl-sts/kubectl-sts/plugins/pluginstest"
)

// MongoDB has no Debian package, so the engine is tested on rs.status()
// documents in the shapes the shells print them: relaxed Extended JSON
// from mongosh (healthy, lagging, no primary, with an arbiter) and plain
// JSON from the legacy mongo shell. Each is one member's view; viewFrom
// turns it into another member's by moving "self" and myState, as the
// documents of the other members would differ.
func load(t *testing.T, name string) map[string]any { return pluginstest.TestdataJSON(t, name) }

func viewFrom(t *testing.T, doc map[string]any, pod string) string {
	t.Helper()
	var cp map[string]any
	b, _ := json.Marshal(doc)
	require.NoError(t, json.Unmarshal(b, &cp))
	for _, m := range cp["members"].([]any) {
		mm := m.(map[string]any)
		delete(mm, "self")
		if strings.HasPrefix(mm["name"].(string), pod+".") {
			mm["self"] = true
			cp["myState"] = mm["state"]
		}
	}
	out, err := json.Marshal(cp)
	require.NoError(t, err)
	return string(out) + "\n"
}

type fixture struct {
	target plugins.Target
	ex     *kubefake.Executor
	events []plugins.RemoveEvent
}

// serve answers rs.status() on each pod with its view of doc; pods in
// down do not answer. rs.remove is recorded and answered ok.
func serve(t *testing.T, doc map[string]any, down ...string) *fixture {
	t.Helper()
	_, ex := kubefake.NewClient()
	f := &fixture{ex: ex}
	f.target = plugins.Target{StatefulSet: &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "mongo", Namespace: "db"}}, Exec: ex, Timeout: time.Second}
	for i := 0; i < 3; i++ {
		name := fmt.Sprintf("mongo-%d", i)
		f.target.Pods = append(f.target.Pods, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "db"},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "mongod", Image: "mongo:7.0"}}},
			Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: fmt.Sprintf("10.1.0.%d", i)},
		})
		if contains(down, name) {
			ex.Handle(name, kubefake.Reply("", 1))
			continue
		}
		view := viewFrom(t, doc, name)
		ex.Handle(name, func(req kube.ExecRequest) (kube.ExecResult, error) {
			script := req.Command[len(req.Command)-1]
			switch {
			case script == statusJS:
				return kube.ExecResult{Stdout: []byte(view)}, nil
			case strings.HasPrefix(script, "var r = rs.remove("):
				return kube.ExecResult{Stdout: []byte(`{"ok":1}` + "\n")}, nil
			}
			return kube.ExecResult{}, fmt.Errorf("unexpected script %q", script)
		})
	}
	return f
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (f *fixture) opts(dry bool) plugins.RemoveOptions {
	return plugins.RemoveOptions{DryRun: dry, Events: func(e plugins.RemoveEvent) { f.events = append(f.events, e) }}
}

func TestHealthySet(t *testing.T) {
	for _, name := range []string{"healthy.json", "legacy-shell-healthy.json"} {
		t.Run(name, func(t *testing.T) {
			f := serve(t, load(t, name))
			members, err := New().Members(context.Background(), f.target)
			require.NoError(t, err)
			require.Len(t, members, 3)
			assert.Equal(t, plugins.RolePrimary, members[0].Role)
			assert.Equal(t, "PRIMARY", members[0].State)
			assert.Equal(t, "rs0", members[0].Details["replicaSet"])
			for _, m := range members[1:] {
				assert.Equal(t, plugins.RoleReplica, m.Role)
				assert.Equal(t, "SECONDARY", m.State)
				assert.Equal(t, "mongo-0.mongo.db.svc.cluster.local:27017", m.Details["syncSource"])
			}
			assert.Equal(t, 1.0, *members[1].LagSeconds)
			assert.Equal(t, 0.0, *members[2].LagSeconds)
			ok, reason := New().Healthy(members, plugins.HealthOptions{MaxLagSeconds: 5})
			assert.True(t, ok, reason)
		})
	}
}

func TestLaggingSet(t *testing.T) {
	f := serve(t, load(t, "lagging.json"))
	members, err := New().Members(context.Background(), f.target)
	require.NoError(t, err)
	assert.Equal(t, 2.0, *members[1].LagSeconds)
	assert.Equal(t, 45.0, *members[2].LagSeconds)
	ok, reason := New().Healthy(members, plugins.HealthOptions{MaxLagSeconds: 10})
	assert.False(t, ok)
	assert.Equal(t, "mongo-2: 45.0s behind (bound 10s)", reason)
	ok, _ = New().Healthy(members, plugins.HealthOptions{MaxLagSeconds: 60})
	assert.True(t, ok)
	ok, reason = New().Healthy(members, plugins.HealthOptions{MaxLagBytes: 1})
	assert.False(t, ok, "no byte lag in MongoDB")
	assert.Contains(t, reason, "lag in bytes unknown")
}

func TestNoPrimary(t *testing.T) {
	f := serve(t, load(t, "no-primary.json"), "mongo-0")
	members, err := New().Members(context.Background(), f.target)
	require.NoError(t, err)
	assert.Equal(t, plugins.RoleUnknown, members[0].Role)
	assert.Contains(t, members[0].Error, "mongosh in pod mongo-0 exited with code 1")
	assert.Equal(t, plugins.RoleReplica, members[1].Role)
	assert.Nil(t, members[1].LagSeconds, "no primary to measure against")
	ok, reason := New().Healthy(members, plugins.HealthOptions{})
	assert.False(t, ok)
	assert.Contains(t, reason, "no answer from mongo-0")
	ok, reason = New().Healthy(members[1:], plugins.HealthOptions{})
	assert.False(t, ok)
	assert.Equal(t, "no member is primary", reason)

	err = New().BeforeRemove(context.Background(), f.target, 2, f.opts(false))
	assert.ErrorContains(t, err, "no pod answered as the replica set's primary")
	for _, c := range f.ex.Calls() {
		assert.NotContains(t, c.Command[len(c.Command)-1], "rs.remove")
	}
}

func TestArbiter(t *testing.T) {
	f := serve(t, load(t, "arbiter.json"))
	members, err := New().Members(context.Background(), f.target)
	require.NoError(t, err)
	assert.Equal(t, plugins.RoleArbiter, members[2].Role)
	assert.Equal(t, "ARBITER", members[2].State)
	assert.Nil(t, members[2].LagSeconds, "arbiters hold no data")
	ok, reason := New().Healthy(members, plugins.HealthOptions{MaxLagSeconds: 5})
	assert.True(t, ok, reason)
}

func TestUnreachableFromThePrimary(t *testing.T) {
	doc := load(t, "healthy.json")
	m2 := doc["members"].([]any)[2].(map[string]any)
	m2["health"] = 0
	m2["lastHeartbeatMessage"] = "Couldn't get a connection within the time limit"
	f := serve(t, doc)
	members, err := New().Members(context.Background(), f.target)
	require.NoError(t, err)
	ok, reason := New().Healthy(members, plugins.HealthOptions{})
	assert.False(t, ok)
	assert.Equal(t, "mongo-2 is unreachable from the primary: Couldn't get a connection within the time limit", reason)
}

func TestBeforeRemoveRunsRsRemoveOnThePrimary(t *testing.T) {
	f := serve(t, load(t, "healthy.json"))
	require.NoError(t, New().BeforeRemove(context.Background(), f.target, 2, f.opts(false)))
	var removes []kube.ExecRequest
	for _, c := range f.ex.Calls() {
		if strings.Contains(c.Command[len(c.Command)-1], "rs.remove") {
			removes = append(removes, c)
		}
	}
	require.Len(t, removes, 1)
	assert.Equal(t, "mongo-0", removes[0].Pod, "on the primary")
	assert.Equal(t, `var r = rs.remove("mongo-2.mongo.db.svc.cluster.local:27017"); print(JSON.stringify({ok: r.ok}))`, removes[0].Command[len(removes[0].Command)-1])
	require.Len(t, f.events, 1)
	assert.Equal(t, plugins.ActionChanged, f.events[0].Action)
	assert.Equal(t, "removed mongo-2.mongo.db.svc.cluster.local:27017 from replica set rs0 (rs.remove on mongo-0)", f.events[0].Message)
}

func TestBeforeRemoveDryRun(t *testing.T) {
	f := serve(t, load(t, "healthy.json"))
	require.NoError(t, New().BeforeRemove(context.Background(), f.target, 1, f.opts(true)))
	for _, c := range f.ex.Calls() {
		assert.NotContains(t, c.Command[len(c.Command)-1], "rs.remove")
	}
	require.Len(t, f.events, 1)
	assert.True(t, f.events[0].DryRun)
	assert.Equal(t, `would run rs.remove("mongo-1.mongo.db.svc.cluster.local:27017") on mongo-0`, f.events[0].Message)
}

func TestBeforeRemoveRefusesThePrimaryAndSkipsNonMembers(t *testing.T) {
	f := serve(t, load(t, "healthy.json"))
	err := New().BeforeRemove(context.Background(), f.target, 0, f.opts(false))
	assert.ErrorContains(t, err, "pod mongo-0 is the primary")

	doc := load(t, "arbiter.json")
	doc["members"] = doc["members"].([]any)[:2] // mongo-2 was already removed
	f = serve(t, doc)
	require.NoError(t, New().BeforeRemove(context.Background(), f.target, 2, f.opts(false)))
	require.Len(t, f.events, 1)
	assert.Equal(t, plugins.ActionSkipped, f.events[0].Action)
	assert.Equal(t, "pod mongo-2 is not a member of the replica set (already removed)", f.events[0].Message)
}

func TestBeforeRemoveRefusesAnUnsafeHost(t *testing.T) {
	doc := load(t, "healthy.json")
	doc["members"].([]any)[2].(map[string]any)["name"] = `mongo-2.x");db.dropDatabase();("`
	f := serve(t, doc)
	err := New().BeforeRemove(context.Background(), f.target, 2, f.opts(false))
	assert.ErrorContains(t, err, "may contain only letters, digits")
}

func TestParseStatusShapes(t *testing.T) {
	st, err := ParseStatus([]byte("Current Mongosh Log ID: 66\n" + viewFrom(t, load(t, "healthy.json"), "mongo-1")))
	require.NoError(t, err, "banners before the document are skipped")
	assert.Equal(t, 2, st.MyState)
	assert.Equal(t, time.Date(2024, 5, 14, 9, 12, 29, 0, time.UTC), st.Members[0].OptimeDate.Time)

	var d Date
	require.NoError(t, json.Unmarshal([]byte(`{"$date":{"$numberLong":"-62135596800000"}}`), &d))
	assert.Equal(t, 1, d.Year())
	require.NoError(t, json.Unmarshal([]byte(`1715677949000`), &d))
	assert.Equal(t, int64(1715677949), d.Unix())
	assert.Error(t, json.Unmarshal([]byte(`{"$oid":"x"}`), &d))

	_, err = ParseStatus([]byte(`{"ok":1,"members":[]}`))
	assert.ErrorContains(t, err, "lists no members")
	_, err = ParseStatus([]byte("MongoServerError: no replset config has been received"))
	assert.Error(t, err)
}

func TestPodOfHost(t *testing.T) {
	f := serve(t, load(t, "healthy.json"))
	assert.Equal(t, "mongo-1", PodOfHost("mongo-1.mongo.db.svc.cluster.local:27017", f.target.Pods))
	assert.Equal(t, "mongo-2", PodOfHost("mongo-2:27017", f.target.Pods))
	assert.Equal(t, "mongo-1", PodOfHost("10.1.0.1:27017", f.target.Pods))
	assert.Equal(t, "", PodOfHost("mongo-10.mongo:27017", f.target.Pods))
}

func TestMatches(t *testing.T) {
	pluginstest.AssertMatches(t, New().Matches,
		[]string{"mongo:7.0", "bitnami/mongodb:7", "percona/percona-server-mongodb:7.0", "mongodb/mongodb-community-server:7.0-ubi8"},
		[]string{"percona/mongodb_exporter:0.40", "bitnami/mongodb-exporter", "mongo-express"})
}

func TestValidateHost(t *testing.T) {
	for _, ok := range []string{"mongo-0.mongo.db.svc.cluster.local:27017", "10.0.0.1:27017", "db", "Mongo-0:1"} {
		assert.NoError(t, ValidateHost(ok), ok)
	}
	for _, bad := range []string{"", ":27017", "a b:1", "a:", "a:123456", "a:1x", `a"b`, "a\\b", "a'b", "a;b", "[::1]:27017"} {
		assert.Error(t, ValidateHost(bad), bad)
	}
}

// FuzzQuoteJS: the quoted form is one JavaScript string literal (a JSON
// string with no raw line terminators) that reads back as the input, and
// a valid host needs no escaping at all.
func FuzzQuoteJS(f *testing.F) {
	for _, seed := range []string{"mongo-0.mongo:27017", `"); db.dropDatabase(); ("`, "\u2028", "\\", "</script>", "\xff", "\n"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q := QuoteJS(s)
		if !strings.HasPrefix(q, `"`) || !strings.HasSuffix(q, `"`) || len(q) < 2 {
			t.Fatalf("QuoteJS(%q) = %s is not one string literal", s, q)
		}
		if strings.ContainsAny(q, "\n\r\u2028\u2029") {
			t.Fatalf("QuoteJS(%q) = %s holds a raw line terminator", s, q)
		}
		var back string
		if err := json.Unmarshal([]byte(q), &back); err != nil {
			t.Fatalf("QuoteJS(%q) = %s does not parse: %v", s, q, err)
		}
		if want := strings.ToValidUTF8(s, "\uFFFD"); back != want && utf8.ValidString(s) {
			t.Fatalf("QuoteJS(%q) reads back as %q", s, back)
		}
		if ValidateHost(s) == nil && q != `"`+s+`"` {
			t.Fatalf("valid host %q needed escaping: %s", s, q)
		}
	})
}

func TestShellScriptCredentials(t *testing.T) {
	path := pluginstest.FakeProgram(t, "mongosh")
	args := pluginstest.RunScript(t, append(path, "MONGO_INITDB_ROOT_USERNAME=admin", "MONGO_INITDB_ROOT_PASSWORD=s3cret"), command(statusJS))["arg"]
	assert.Equal(t, []string{"--quiet", "--norc", "--port", "27017", "-u", "admin", "-p", "s3cret", "--authenticationDatabase", "admin", "--eval", statusJS}, args)
	args = pluginstest.RunScript(t, append(path, "MONGODB_ROOT_PASSWORD=bitnami", "MONGODB_PORT_NUMBER=27018"), command(statusJS))["arg"]
	assert.Equal(t, []string{"--quiet", "--norc", "--port", "27018", "-u", "root", "-p", "bitnami", "--authenticationDatabase", "admin", "--eval", statusJS}, args)
	args = pluginstest.RunScript(t, path, command(statusJS))["arg"]
	assert.Equal(t, []string{"--quiet", "--norc", "--port", "27017", "--eval", statusJS}, args)
}

// FuzzShellScriptPassesScriptVerbatim: the script reaches the shell as
// one argument.
func FuzzShellScriptPassesScriptVerbatim(f *testing.F) {
	for _, seed := range []string{statusJS, "$(id)", "`id`", "'\"", "--eval"} {
		f.Add(seed)
	}
	path := pluginstest.FakeProgram(f, "mongosh")
	f.Fuzz(func(t *testing.T, js string) {
		if strings.ContainsRune(js, 0) {
			return
		}
		args := pluginstest.RunScript(t, path, command(js))["arg"]
		if len(args) != 6 || args[5] != js {
			t.Fatalf("mongosh got %q, want %q last", args, js)
		}
	})
}
