package status_test

import (
	"context"
	"testing"
	"time"

	"github.com/kubectl-sts/kubectl-sts/pkg/status"
	"github.com/kubectl-sts/kubectl-sts/pkg/status/statustest"
)

const benchReplicas = 500

// BenchmarkBuild reads and judges a 500-replica StatefulSet through a fake
// clientset: the three requests plus Summarize.
func BenchmarkBuild(b *testing.B) {
	f := statustest.New("prod", "db", benchReplicas, now).StartRollout(250, 499, 498)
	c, _ := countingClient(f.Objects()...)
	opts := status.BuildOptions{Now: func() time.Time { return now }}
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		r, err := status.Build(ctx, c, "prod", "db", opts)
		if err != nil {
			b.Fatal(err)
		}
		if len(r.Ordinals) != benchReplicas {
			b.Fatalf("got %d ordinals", len(r.Ordinals))
		}
	}
}

// BenchmarkSummarize is the pure part alone, what workflows pay to judge a
// StatefulSet they already hold.
func BenchmarkSummarize(b *testing.B) {
	f := statustest.New("prod", "db", benchReplicas, now).StartRollout(250, 499, 498).AddLeftoverPVC(600)
	for b.Loop() {
		r := status.Summarize(f.StatefulSet, f.Pods, f.PVCs, now, status.Options{})
		if len(r.LeftoverPVCs) != 1 {
			b.Fatal("leftover claim not found")
		}
	}
}
