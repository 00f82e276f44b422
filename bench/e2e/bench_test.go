package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/test/e2e/e2eutil"
)

// TestBenchE2E runs the benchmark: in full with KUBECTL_STS_BENCH_DOC set
// (make bench-e2e), which writes the figures into that file, or else a
// short smoke whose checks hold in both.
func TestBenchE2E(t *testing.T) {
	doc := os.Getenv(fullEnv)
	cfg := smoke()
	if doc != "" {
		cfg = full()
	}
	began := time.Now()
	load := loadAvg()
	// Built as releases are.
	plugin := e2eutil.BuildPlugin(t, "-trimpath", "-ldflags=-s -w")
	var w section
	// Whatever was measured is written, also when a later part fails.
	defer func() {
		t.Logf("benchmark figures:\n%s", w.String())
		if doc == "" {
			return
		}
		head := fmt.Sprintf("Measured %s on %s (%d CPUs, Go %s, %s/%s); load average %s at the start, %s at the end; the run took %s.\n",
			began.UTC().Format("2006-01-02 15:04 MST"), cpuModel(), runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH,
			load, loadAvg(), time.Since(began).Round(time.Second))
		if t.Failed() {
			head += "\n**This run failed before it finished; below are the figures it took.**\n"
		}
		if err := writeSection(doc, head+w.String()); err != nil {
			t.Error(err)
		}
	}()

	// Each part is a subtest: one that fails leaves the others running.
	part := func(title string, f func(t *testing.T)) {
		if !t.Run(title, f) {
			w.line("\n*%s: this part failed; the log of the run says why.*", title)
		}
		// The part's namespaces are deleted as it ends: the next part
		// starts once they are gone, on a cluster that is not busy
		// deleting its pods.
		drained(t)
	}

	part("start-up", func(t *testing.T) {
		st := startup(t, plugin, cfg.startupRun)
		w.h("Start-up and size")
		w.line("| binary size (release flags) | `kubectl sts version --client` min | median |")
		w.line("|---|---|---|")
		w.line("| %.1f MiB | %s | %s |", float64(fileSize(t, plugin))/(1<<20), ms(st.min), ms(st.median))
	})

	watches := map[int]int{}
	for _, sr := range cfg.rollouts {
		part(fmt.Sprintf("rollout %d", sr.replicas), func(t *testing.T) {
			variants := []string{variantPlain, variantPlugin}
			if sr.replicas <= cfg.runbooks {
				variants = append(variants, variantCorrected, variantWritten)
			}
			if sr.replicas <= cfg.sleep10 {
				variants = append(variants, variantSleep)
			}
			runs := rolloutBench(t, plugin, sr, variants)
			for _, r := range runs {
				if r.variant == variantPlugin {
					watches[sr.replicas] = count(r.reqs, "watch")
				}
			}
			writeRollouts(&w, sr, variants, runs)
			checkRollouts(t, runs)
		})
	}
	if len(watches) > 1 {
		var seen []int
		for _, n := range watches {
			seen = append(seen, n)
		}
		assert.Equal(t, 1, len(slices.Compact(slices.Sorted(slices.Values(seen)))), "watches per rollout do not grow with the replicas: %v", watches)
	}

	if len(cfg.statuses) > 0 {
		part("status", func(t *testing.T) {
			w.h("status")
			w.line("| replicas | min | median | requests | peak RSS |")
			w.line("|---|---|---|---|---|")
			var counts []int
			for _, n := range cfg.statuses {
				m := statusBench(t, plugin, n)
				counts = append(counts, len(m.reqs))
				w.line("| %d | %s | %s | %d (%s) | %s |", n, ms(m.min), ms(m.median), len(m.reqs), strings.Join(tally(m.reqs), ", "), mib(m.maxRSS))
			}
			assert.Equal(t, 1, len(slices.Compact(slices.Clone(counts))), "status makes the same requests at any size: %v", counts)
		})
	}

	if cfg.ordinals > 0 {
		part("expand-pvc and scale-down", func(t *testing.T) {
			w.h("expand-pvc and scale-down")
			w.line("%d ordinals each, the command beside its runbook loop (bench/runbooks), one run each.", cfg.ordinals)
			w.line("")
			w.line("| workflow | kubectl sts | runbook | ratio | requests of kubectl sts |")
			w.line("|---|---|---|---|---|")
			e := expandBench(t, plugin, cfg.ordinals)
			w.line("| expand-pvc | %s | %s | %.2f× | %d (%s) |", ms(e.plugin.wall), ms(e.runbook.wall), ratio(e.plugin.wall, e.runbook.wall), len(e.pluginReqs), strings.Join(tally(e.pluginReqs), ", "))
			s := scaleDownBench(t, plugin, cfg.ordinals)
			w.line("| scale-down | %s | %s | %.2f× | %d (%s) |", ms(s.plugin.wall), ms(s.runbook.wall), ratio(s.plugin.wall, s.runbook.wall), len(s.pluginReqs), strings.Join(tally(s.pluginReqs), ", "))
		})
	}

	if len(cfg.fanout) > 0 {
		part("engine fan-out", func(t *testing.T) {
			w.h("Engine fan-out")
			w.line("`status --engine redis`, every exec answering after 200 ms through the real exec path.")
			w.line("")
			w.line("| pods | min | median | ratio to 1 pod |")
			w.line("|---|---|---|---|")
			var one time.Duration
			for _, n := range cfg.fanout {
				m := fanoutBench(t, plugin, n)
				if one == 0 {
					one = m.min
				}
				w.line("| %d | %s | %s | %.2f× |", n, ms(m.min), ms(m.median), ratio(m.min, one))
			}
		})
	}

	if len(cfg.memory) > 0 {
		part("memory", func(t *testing.T) {
			w.h("Peak memory at scale")
			w.line("| replicas | status wall | status peak RSS | rollout (first step, then pause) wall | rollout peak RSS |")
			w.line("|---|---|---|---|---|")
			for _, n := range cfg.memory {
				s, r := memoryBench(t, plugin, n)
				w.line("| %d | %s | %s | %s | %s |", n, ms(s.min), mib(s.maxRSS), ms(r.wall), mib(r.maxRSS))
			}
		})
	}
}

// checkRollouts holds in every run, smoke or full: the plugin and the
// corrected runbooks finish only once every pod is updated and Ready, and
// the plugin makes at most three requests per step.
func checkRollouts(t *testing.T, runs []rolloutRun) {
	t.Helper()
	for _, r := range runs {
		switch r.variant {
		case variantPlugin, variantCorrected, variantSleep:
			assert.Zero(t, r.early, "%s finished before every pod was Ready on the new revision", r.variant)
		}
		if r.variant != variantPlugin {
			continue
		}
		// -v=6 logs the watches too: one on the StatefulSet, one on its
		// pods, whatever the replica count.
		assert.Equal(t, 2, count(r.reqs, "watch"), "watches of the rollout: %v", tally(r.reqs))
		// Each step: its partition patch first, then one journal write and
		// one Event. The lease heartbeat (a journal write every third of
		// the lease) is not a step's own and may fall into any step.
		steps := stepRequests(r.reqs)
		beats := 0
		for i, n := range steps {
			own := n.writes["patch statefulsets"] + n.writes["update configmaps"] + n.writes["create events"]
			assert.Equal(t, []string{"patch statefulsets", "update configmaps", "create events"}, n.names[:min(3, len(n.names))],
				"step %d of the rollout starts with its partition patch, then one journal write and one Event", i+2)
			assert.Equal(t, 1, n.writes["create events"], "Events of step %d: %v", i+2, n.names)
			// An informer's watch may time out and be renewed during any step.
			rewatch := n.writes["watch pods"] + n.writes["watch statefulsets"]
			assert.Equal(t, own+rewatch, len(n.names), "step %d sends nothing but its patch, journal writes and Event: %v", i+2, n.names)
			beats += n.writes["update configmaps"] - 1
		}
		if len(steps) > 0 {
			span := steps[len(steps)-1].end.Sub(steps[0].start)
			assert.LessOrEqual(t, beats, int(span/(journal.DefaultLeaseDuration/3))+1,
				"journal writes beyond one per step are lease heartbeats, at most one per %s over %s", journal.DefaultLeaseDuration/3, span)
		}
	}
}

// stepCount is what one step of a rollout sent, from its partition patch
// up to the next one's.
type stepCount struct {
	start, end time.Time
	names      []string       // "verb resource" in order
	writes     map[string]int // by "verb resource"
}

// stepRequests splits a rollout's requests at its partition patches.
func stepRequests(reqs []request) []stepCount {
	var out []stepCount
	var cur *stepCount
	for _, r := range reqs {
		if r.verb == "patch" && r.resource == "statefulsets" {
			if cur != nil {
				cur.end = r.at
				out = append(out, *cur)
			}
			cur = &stepCount{start: r.at, writes: map[string]int{}}
		}
		if cur != nil {
			name := r.verb + " " + r.resource
			cur.names = append(cur.names, name)
			cur.writes[name]++
		}
	}
	return out
}

func writeRollouts(w *section, sr sizeRepeat, variants []string, runs []rolloutRun) {
	w.h(fmt.Sprintf("Staged rollout, %d replicas", sr.replicas))
	w.line("OrderedReady, one pod per step, %d run(s) of each, interleaved (the `sleep 10` runbook once). Wall time from the start of the command (the patch, for the controller alone) to every pod Ready on the new revision.", sr.repeat)
	if sr.terminate > 0 {
		w.line("A deleted pod takes %s to go, staying Ready meanwhile, as a database's graceful shutdown does.", sr.terminate)
	} else {
		w.line("A deleted pod goes at once.")
	}
	w.line("")
	w.line("| how | min | median | ratio to the partition patch (min) | finished early |")
	w.line("|---|---|---|---|---|")
	var base time.Duration
	byVariant := map[string][]rolloutRun{}
	for _, r := range runs {
		byVariant[r.variant] = append(byVariant[r.variant], r)
	}
	for _, v := range variants {
		var walls []time.Duration
		early, notFound := 0, 0
		var pods []string
		for _, r := range byVariant[v] {
			walls = append(walls, r.wall)
			notFound += r.notFound
			if r.early > 0 {
				early++
				pods = append(pods, itoa(r.early))
			}
		}
		lo, med := minMedian(walls)
		if v == variantPlain {
			base = lo
		}
		e := fmt.Sprintf("%d of %d runs", early, len(walls))
		if early > 0 {
			e += " (pods not yet updated: " + strings.Join(pods, ", ") + ")"
		}
		e += fmt.Sprintf("; `kubectl wait` hit NotFound %d times", notFound)
		if v != variantWritten {
			e = "-"
		}
		w.line("| %s | %s | %s | %.2f× | %s |", v, ms(lo), ms(med), ratio(lo, base), e)
	}
	pluginMin, _ := minMedian(wallsOf(byVariant[variantPlugin]))
	if sleep, _ := minMedian(wallsOf(byVariant[variantSleep])); sleep > 0 {
		w.line("")
		w.line("kubectl sts is %.1f× faster than the `sleep 10` runbook.", ratio(sleep, pluginMin))
	}
	var plugin, pluginDeletes, controller []time.Duration
	var reqs []request
	var rss int64
	for _, r := range runs {
		switch r.variant {
		case variantPlugin:
			plugin = append(plugin, r.reactions...)
			pluginDeletes = append(pluginDeletes, r.deletes...)
			reqs, rss = r.reqs, max(rss, r.maxRSS)
		case variantPlain:
			controller = append(controller, r.reactions...)
		}
	}
	w.line("")
	w.line("Reaction to a pod turning Ready, the controller's delete of the next pod: p50 %s, p95 %s (%d pods) under kubectl sts; p50 %s, p95 %s (%d pods) after the partition patch alone.",
		ms(percentile(pluginDeletes, 50)), ms(percentile(pluginDeletes, 95)), len(pluginDeletes), ms(percentile(controller, 50)), ms(percentile(controller, 95)), len(controller))
	if len(plugin) > 0 {
		w.line("kubectl sts's partition patches that waited for a pod to turn Ready: p50 %s, p95 %s after it (%d steps).", ms(percentile(plugin, 50)), ms(percentile(plugin, 95)), len(plugin))
	} else {
		w.line("No kubectl sts partition patch waited for a pod to turn Ready: the steps were controller-paced (the partition went one step ahead before the pod was Ready).")
	}
	w.line("")
	w.line("Requests of one kubectl sts rollout: %d, %.1f per step, %d watches: %s. Peak RSS %s.",
		len(reqs), perStep(reqs), count(reqs, "watch"), strings.Join(tally(reqs), ", "), mib(rss))
}

func wallsOf(runs []rolloutRun) []time.Duration {
	var out []time.Duration
	for _, r := range runs {
		out = append(out, r.wall)
	}
	return out
}

// section is the generated part of docs/benchmarks.md.
type section struct{ b strings.Builder }

func (s *section) h(title string) { s.line("\n### %s\n", title) }
func (s *section) line(format string, args ...any) {
	fmt.Fprintf(&s.b, format+"\n", args...)
}
func (s *section) String() string { return s.b.String() }

const (
	beginMark = "<!-- BEGIN GENERATED by make bench-e2e: do not edit -->"
	endMark   = "<!-- END GENERATED -->"
)

// writeSection replaces the generated section of the file at path.
func writeSection(path, body string) error {
	if !filepath.IsAbs(path) {
		path = filepath.Join(repoRoot(), path)
	}
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(old)
	i, j := strings.Index(s, beginMark), strings.Index(s, endMark)
	if i < 0 || j < i {
		return fmt.Errorf("%s has no generated section (%q ... %q)", path, beginMark, endMark)
	}
	s = s[:i+len(beginMark)] + "\n" + body + "\n" + s[j:]
	return os.WriteFile(path, []byte(s), 0o644)
}

func minMedian(d []time.Duration) (time.Duration, time.Duration) {
	if len(d) == 0 {
		return 0, 0
	}
	s := slices.Sorted(slices.Values(d))
	return s[0], s[(len(s)-1)/2]
}

func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(d))
	return s[(len(s)-1)*p/100]
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func ms(d time.Duration) string {
	if d >= 10*time.Second {
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
	return fmt.Sprintf("%d ms", d.Milliseconds())
}

func mib(kib int64) string { return fmt.Sprintf("%.0f MiB", float64(kib)/1024) }

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:3], " ")
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for l := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}
