// Package all assembles the registry of every engine kubectl-sts knows.
package all

import (
	"github.com/kubectl-sts/kubectl-sts/plugins"
	"github.com/kubectl-sts/kubectl-sts/plugins/etcd"
	"github.com/kubectl-sts/kubectl-sts/plugins/mongodb"
	"github.com/kubectl-sts/kubectl-sts/plugins/mysql"
	"github.com/kubectl-sts/kubectl-sts/plugins/postgres"
	"github.com/kubectl-sts/kubectl-sts/plugins/redis"
	"github.com/kubectl-sts/kubectl-sts/plugins/zookeeper"
)

// New returns a registry of every engine. MongoDB comes before MySQL so
// that Percona's MongoDB images are not taken for Percona Server.
func New() *plugins.Registry {
	return plugins.NewRegistry(
		postgres.New(),
		mongodb.New(),
		mysql.New(),
		redis.New(),
		etcd.New(),
		zookeeper.New(),
	)
}
