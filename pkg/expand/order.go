package expand

import (
	"fmt"
	"sort"
	"strings"

	"github.com/kubectl-sts/kubectl-sts/plugins"
)

// Order returns ordinals in the order to expand them: with members from a
// database engine, the replicas (highest ordinal first) and then the
// primary; without, the highest ordinal first, the order in which a
// StatefulSet itself updates pods. note says why members could not order
// them (no primary, or several).
func Order(ordinals []int, members []plugins.Member) (order []int, note string) {
	order = append([]int(nil), ordinals...)
	sort.Sort(sort.Reverse(sort.IntSlice(order)))
	if members == nil {
		return order, ""
	}
	primaries := plugins.Primaries(members)
	switch len(primaries) {
	case 0:
		return order, "no member reported itself primary: highest ordinal first"
	case 1:
	default:
		pods := make([]string, len(primaries))
		for i, m := range primaries {
			pods[i] = m.Pod
		}
		return order, fmt.Sprintf("several members report themselves primary (%s): highest ordinal first", strings.Join(pods, ", "))
	}
	primary := primaries[0].Ordinal
	for i, n := range order {
		if n == primary {
			order = append(append(order[:i:i], order[i+1:]...), primary)
			break
		}
	}
	return order, ""
}
