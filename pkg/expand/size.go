package expand

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// minSize guards against a forgotten unit: "--size 50" is 50 bytes.
var minSize = resource.MustParse("1Mi")

// ParseSize parses a --size value: a positive Kubernetes quantity of whole
// bytes, at least 1Mi. Errors say what to type instead.
func ParseSize(s string) (resource.Quantity, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return resource.Quantity{}, fmt.Errorf("--size is required: the new size of each claim, e.g. --size 50Gi")
	}
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return resource.Quantity{}, fmt.Errorf("--size %q is not a Kubernetes quantity%s", s, unitHint(s))
	}
	switch {
	case q.Sign() <= 0:
		return resource.Quantity{}, fmt.Errorf("--size %q must be larger than zero, e.g. --size 50Gi", s)
	case q.MilliValue()%1000 != 0:
		return resource.Quantity{}, fmt.Errorf("--size %q is not a whole number of bytes; use a unit such as Mi or Gi", s)
	case q.Cmp(minSize) < 0:
		return resource.Quantity{}, fmt.Errorf("--size %q is %s bytes, which is almost certainly missing a unit: use e.g. %sGi", s, q.String(), s)
	}
	if q.Format == resource.DecimalExponent {
		// 1e9 reads better as 1G in plans and messages.
		q = *resource.NewQuantity(q.Value(), resource.DecimalSI)
	}
	return q, nil
}

// sameSize compares two sizes by value, so 20Gi and 20480Mi agree.
func sameSize(a, b string) bool {
	qa, errA := resource.ParseQuantity(a)
	qb, errB := resource.ParseQuantity(b)
	return errA == nil && errB == nil && qa.Cmp(qb) == 0
}

// unitHint suggests the spelling of common unit mistakes (GB, gi, g).
func unitHint(s string) string {
	i := strings.IndexFunc(s, func(r rune) bool { return !(r >= '0' && r <= '9' || r == '.') })
	if i <= 0 {
		return ": use a number with a unit, e.g. 50Gi, 500Gi or 2Ti"
	}
	num, unit := s[:i], strings.ToLower(strings.TrimSuffix(strings.TrimSuffix(s[i:], "B"), "b"))
	switch unit {
	case "k", "ki", "m", "mi", "g", "gi", "t", "ti", "p", "pi":
		bin := strings.ToUpper(unit[:1]) + "i"
		if unit == "k" || unit == "ki" {
			bin = "Ki"
		}
		dec := strings.ToUpper(unit[:1])
		if dec == "K" {
			dec = "k"
		}
		return fmt.Sprintf(": did you mean %s%s (binary, powers of 1024) or %s%s (decimal)?", num, bin, num, dec)
	}
	return ": use a number with a unit, e.g. 50Gi, 500Gi or 2Ti"
}

// requestOf returns a claim's spec.resources.requests.storage.
func requestOf(pvc *corev1.PersistentVolumeClaim) (resource.Quantity, bool) {
	q, ok := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	return q, ok
}

// capacityOf returns a claim's status.capacity.storage.
func capacityOf(pvc *corev1.PersistentVolumeClaim) (resource.Quantity, bool) {
	q, ok := pvc.Status.Capacity[corev1.ResourceStorage]
	return q, ok
}

// templateRequest returns the storage request of a volumeClaimTemplate.
func templateRequest(t *corev1.PersistentVolumeClaim) (resource.Quantity, bool) {
	q, ok := t.Spec.Resources.Requests[corev1.ResourceStorage]
	return q, ok
}

// show renders a quantity, "-" when absent.
func show(q resource.Quantity, ok bool) string {
	if !ok {
		return "-"
	}
	return q.String()
}
