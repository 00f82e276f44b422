package all_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-sts/kubectl-sts/plugins/all"
)

func TestEveryEngineIsRegistered(t *testing.T) {
	assert.Equal(t, []string{"postgres", "mongodb", "mysql", "redis", "etcd", "zookeeper"}, all.New().Names())
}

func TestDetectByImage(t *testing.T) {
	reg := all.New()
	cases := map[string]string{
		"postgres:16":                                       "postgres",
		"docker.io/bitnami/postgresql-repmgr:16":            "postgres",
		"registry.opensource.zalan.do/acid/spilo-16:3.2-p2": "postgres",
		"timescale/timescaledb-ha:pg16":                     "postgres",
		"postgis/postgis:16-3.4":                            "postgres",
		"mysql:8.4":                                         "mysql",
		"mariadb:11.4":                                      "mysql",
		"percona/percona-server:8.0":                        "mysql",
		"percona/percona-xtradb-cluster:8.0":                "mysql",
		"mongo:7":                                           "mongodb",
		"percona/percona-server-mongodb:7.0":                "mongodb",
		"redis:7":                                           "redis",
		"valkey/valkey:8":                                   "redis",
		"quay.io/coreos/etcd:v3.6.16":                       "etcd",
		"bitnami/etcd:3.5":                                  "etcd",
		"zookeeper:3.9":                                     "zookeeper",
		"bitnami/zookeeper:3.8":                             "zookeeper",
		"nginx:1.27":                                        "",
		"prometheuscommunity/postgres-exporter":             "",
	}
	for image, want := range cases {
		sts := &appsv1.StatefulSet{}
		sts.Spec.Template.Spec.Containers = []corev1.Container{{Name: "c", Image: image}}
		e, err := reg.Detect(sts, "")
		require.NoError(t, err, image)
		got := ""
		if e != nil {
			got = e.Name()
		}
		assert.Equal(t, want, got, image)
	}
}

func TestLookupByAlias(t *testing.T) {
	reg := all.New()
	for alias, want := range map[string]string{"postgresql": "postgres", "pg": "postgres", "mariadb": "mysql", "valkey": "redis", "mongo": "mongodb", "zk": "zookeeper"} {
		e, ok := reg.Lookup(alias)
		require.True(t, ok, alias)
		assert.Equal(t, want, e.Name())
	}
}
