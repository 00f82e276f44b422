package plugins

import "fmt"

// LagUnits says which measures of replication lag an engine reports.
type LagUnits struct {
	Bytes   bool
	Seconds bool
}

// LagMeasurer is implemented by engines that say which lag they measure,
// so that a bound they can never judge is refused before anything starts
// rather than failing a healthy set after a full step timeout.
type LagMeasurer interface {
	LagUnits() LagUnits
}

// CheckLagBounds returns an error naming the units e measures when opts
// bound a lag it does not measure. Engines that do not say are trusted.
func CheckLagBounds(e Engine, opts HealthOptions) error {
	lm, ok := e.(LagMeasurer)
	if !ok {
		return nil
	}
	u := lm.LagUnits()
	var measured string
	switch {
	case u.Bytes && u.Seconds:
		return nil
	case u.Bytes:
		measured = "bytes only"
	case u.Seconds:
		measured = "seconds only"
	default:
		measured = "neither bytes nor seconds"
	}
	var bad, use string
	switch {
	case opts.MaxLagSeconds > 0 && !u.Seconds:
		bad, use = fmt.Sprintf("a bound in seconds (%gs)", opts.MaxLagSeconds), "give --max-lag as a byte size, e.g. 64Mi"
	case opts.MaxLagBytes > 0 && !u.Bytes:
		bad, use = fmt.Sprintf("a bound in bytes (%d)", opts.MaxLagBytes), "give --max-lag as a duration, e.g. 30s"
	default:
		return nil
	}
	if !u.Bytes && !u.Seconds {
		use = "drop --max-lag"
	}
	return fmt.Errorf("%s measures replication lag in %s, so %s can never pass: %s", e.Name(), measured, bad, use)
}
