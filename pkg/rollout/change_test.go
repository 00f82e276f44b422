package rollout

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
)

func TestParseImages(t *testing.T) {
	got, err := ParseImages([]string{"db=postgres:16.4", "sidecar=registry.example.com:5000/team/exporter@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"})
	require.NoError(t, err)
	assert.Equal(t, "postgres:16.4", got["db"])

	for _, bad := range []struct{ in, want string }{
		{"postgres:16", "use CONTAINER=IMAGE"},
		{"db=", "use CONTAINER=IMAGE"},
		{"=img", "use CONTAINER=IMAGE"},
		{"DB=postgres", "not a container name"},
		{"db=Postgres:16", "not a valid image reference"},
		{"db=postgres:16 latest", "not a valid image reference"},
		{"db=postgres::16", "not a valid image reference"},
		{"db=postgres@sha256:xyz", "not a valid image reference"},
	} {
		_, err := ParseImages([]string{bad.in})
		assert.ErrorContains(t, err, bad.want, bad.in)
	}
	_, err = ParseImages([]string{"db=a:1", "db=a:2"})
	assert.ErrorContains(t, err, "twice")
}

func TestParseEnv(t *testing.T) {
	got, err := ParseEnv([]string{"A=1", "B=", "C-"})
	require.NoError(t, err)
	assert.Equal(t, []EnvChange{{Name: "A", Value: "1"}, {Name: "B"}, {Name: "C", Remove: true}}, got)
	for _, bad := range []string{"A", "1A=x", "=x", "A=1,A=2"} {
		_, err := ParseEnv([]string{bad})
		if bad == "A=1,A=2" {
			require.NoError(t, err) // a value may hold commas
			continue
		}
		assert.Error(t, err, bad)
	}
	_, err = ParseEnv([]string{"A=1", "A=2"})
	assert.ErrorContains(t, err, "twice")
}

func TestChangeApply(t *testing.T) {
	sts := newSTS("db", 3, "app:v1")
	sts.Spec.Template.Spec.Containers = append(sts.Spec.Template.Spec.Containers, corev1.Container{Name: "exporter", Image: "exp:1",
		Env: []corev1.EnvVar{{Name: "KEEP", Value: "1"}, {Name: "DROP", Value: "x"}}})

	c := &Change{Images: map[string]string{"db": "app:v2"}, Env: []EnvChange{{Name: "NEW", Value: "y"}, {Name: "DROP", Remove: true}}, Container: "exporter"}
	tpl, err := c.Apply(sts)
	require.NoError(t, err)
	assert.Equal(t, "app:v2", tpl.Spec.Containers[0].Image)
	assert.Empty(t, tpl.Spec.Containers[0].Env, "env limited to --container")
	assert.Equal(t, []corev1.EnvVar{{Name: "KEEP", Value: "1"}, {Name: "NEW", Value: "y"}}, tpl.Spec.Containers[1].Env)
	assert.Equal(t, "app:v1", sts.Spec.Template.Spec.Containers[0].Image, "the StatefulSet itself is not modified")

	// Applying again gives the same template: resuming an apply is safe.
	sts2 := sts.DeepCopy()
	sts2.Spec.Template = *tpl
	again, err := c.Apply(sts2)
	require.NoError(t, err)
	assert.True(t, templateEqual(again, tpl))

	_, err = (&Change{Images: map[string]string{"nope": "a:1"}}).Apply(sts)
	assert.ErrorContains(t, err, `no container "nope" (containers: db, exporter)`)

	patched, err := (&Change{Patch: `{"spec":{"template":{"metadata":{"annotations":{"restartedAt":"now"}}}}}`}).Apply(sts)
	require.NoError(t, err)
	assert.Equal(t, "now", patched.Annotations["restartedAt"])

	_, err = (&Change{Patch: `{"spec":{"replicas":7}}`}).Apply(sts)
	assert.ErrorContains(t, err, "changes more than spec.template")
	_, err = (&Change{Patch: `{"metadata":{"labels":{"x":"y"}}}`}).Apply(sts)
	assert.ErrorContains(t, err, "changes more than spec.template")
	_, err = (&Change{Patch: `{"spec":{"template":{"spec":{"containers":[{"name":"db","image":"app:v1"}]}}}}`}).Apply(sts)
	assert.ErrorContains(t, err, "does not change the pod template")
}

func TestParsePatchAndManifest(t *testing.T) {
	p, err := ParsePatch("spec:\n  template:\n    metadata:\n      annotations: {a: b}\n")
	require.NoError(t, err)
	assert.JSONEq(t, `{"spec":{"template":{"metadata":{"annotations":{"a":"b"}}}}}`, p)
	_, err = ParsePatch("[1,2]")
	assert.Error(t, err)
	_, err = ParsePatch("{")
	assert.Error(t, err)

	manifest := `apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  replicas: 3
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - name: db
        image: app:v3
`
	tpl, err := ParseManifest([]byte(manifest), "db.yaml", "db", "default")
	require.NoError(t, err)
	assert.Equal(t, "app:v3", tpl.Spec.Containers[0].Image)

	_, err = ParseManifest([]byte(manifest), "db.yaml", "other", "default")
	assert.ErrorContains(t, err, "describes statefulset db, not other")
	_, err = ParseManifest([]byte("kind: Deployment\n"), "d.yaml", "db", "")
	assert.ErrorContains(t, err, "not a StatefulSet")
	_, err = ParseManifest([]byte(manifest+"  bogus: 1\n"), "db.yaml", "db", "")
	assert.Error(t, err)

	sts := newSTS("db", 3, "app:v1")
	c := &Change{Template: tpl, Source: "db.yaml"}
	got, err := c.Apply(sts)
	require.NoError(t, err)
	assert.Equal(t, "app:v3", got.Spec.Containers[0].Image)
	tpl.Labels = map[string]string{"app": "other"}
	_, err = c.Apply(sts)
	assert.ErrorContains(t, err, "does not carry the labels of the selector")
}

func TestChangeApplyValidatesPatchedImages(t *testing.T) {
	sts := newSTS("db", 3, "app:v1")
	_, err := (&Change{Patch: `{"spec":{"template":{"spec":{"containers":[{"name":"db","image":"Bad Image"}]}}}}`}).Apply(sts)
	assert.ErrorContains(t, err, "not a valid image reference")
}
