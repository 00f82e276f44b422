package util

import (
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
)

// ParseMaxLag reads --max-lag (rollout, status): durations bound seconds,
// quantities bytes, either or both comma-separated (10s,64Mi).
func ParseMaxLag(v string) (int64, float64, error) {
	if v == "" {
		return 0, 0, nil
	}
	var bytes int64
	var seconds float64
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if d, err := time.ParseDuration(item); err == nil {
			if d <= 0 {
				return 0, 0, UsageErrorf("--max-lag %q must be positive", item)
			}
			seconds = d.Seconds()
			continue
		}
		q, err := resource.ParseQuantity(item)
		if err != nil || q.Sign() <= 0 {
			return 0, 0, UsageErrorf("--max-lag %q is neither a duration (10s) nor a positive byte size (64Mi)", item)
		}
		bytes = q.Value()
	}
	return bytes, seconds, nil
}
