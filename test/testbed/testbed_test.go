package testbed_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/test/testbed"
)

// cluster is shared by the tests of this package; each test works in a
// namespace of its own.
var cluster *testbed.Cluster

func TestMain(m *testing.M) {
	os.Exit(testbed.Main(m, testbed.Options{Name: "testbed-self"}, &cluster))
}

// BenchmarkStart measures a warm start (binaries built) of a one-node
// cluster, as Start reports it, up to its API, controllers and node ready;
// stopping it is not counted.
//
//	go test ./test/testbed -run '^$' -bench Start -benchtime 3x
func BenchmarkStart(b *testing.B) {
	ctx := context.Background()
	var total time.Duration
	n := 0
	for b.Loop() {
		c, err := testbed.Start(ctx, testbed.Options{Name: "bench", Nodes: 1})
		if err != nil {
			b.Fatal(err)
		}
		total += c.StartupTime
		n++
		b.StopTimer()
		if err := c.Stop(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(total.Seconds()/float64(n), "s/start")
}

func TestStatefulSetBecomesReadyWithBoundClaims(t *testing.T) {
	ns := cluster.NewNamespace(t)
	ctx := context.Background()
	sts := newStatefulSet(ns, "web", 3, "")
	createStatefulSet(t, sts)
	waitReady(t, ns, "web", 3)

	pvcs, err := cluster.Client.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pvcs.Items) != 3 {
		t.Fatalf("want 3 PVCs, got %d", len(pvcs.Items))
	}
	for _, pvc := range pvcs.Items {
		if pvc.Status.Phase != corev1.ClaimBound {
			t.Errorf("PVC %s is %s, want Bound", pvc.Name, pvc.Status.Phase)
		}
		if got := pvc.Status.Capacity.Storage().String(); got != "1Gi" {
			t.Errorf("PVC %s capacity %s, want 1Gi", pvc.Name, got)
		}
		if sc := ptrString(pvc.Spec.StorageClassName); sc != "testbed-offline" {
			t.Errorf("PVC %s has StorageClass %q, want the default testbed-offline", pvc.Name, sc)
		}
		pv, err := cluster.Client.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
		if err != nil {
			t.Errorf("PV of %s: %v", pvc.Name, err)
		} else if pv.Status.Phase != corev1.VolumeBound {
			t.Errorf("PV %s is %s, want Bound", pv.Name, pv.Status.Phase)
		}
	}

	// OrderedReady: each pod became Ready before its successor was created.
	pods := listPods(t, ns)
	for i := 1; i < 3; i++ {
		prevReady := readySince(pods[fmt.Sprintf("web-%d", i-1)])
		created := pods[fmt.Sprintf("web-%d", i)].CreationTimestamp.Time
		if created.Before(prevReady.Truncate(time.Second)) {
			t.Errorf("web-%d created at %s, before web-%d was Ready at %s", i, created, i-1, prevReady)
		}
	}
}

func TestPartitionedRollingUpdateUpdatesOnlyOrdinalsAbovePartition(t *testing.T) {
	ns := cluster.NewNamespace(t)
	ctx := context.Background()
	sts := newStatefulSet(ns, "db", 3, "")
	sts.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{
		Type:          appsv1.RollingUpdateStatefulSetStrategyType,
		RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: ptr(int32(2))},
	}
	createStatefulSet(t, sts)
	waitReady(t, ns, "db", 3)
	oldUIDs := podUIDs(t, ns)

	patch := `{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"registry.example/app:v2"}]}}}}`
	if _, err := cluster.Client.AppsV1().StatefulSets(ns).Patch(ctx, "db", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	var cur, upd string
	waitFor(t, 30*time.Second, "ordinal 2 updated and Ready", func() (bool, error) {
		s, err := cluster.Client.AppsV1().StatefulSets(ns).Get(ctx, "db", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		cur, upd = s.Status.CurrentRevision, s.Status.UpdateRevision
		return s.Status.UpdatedReplicas == 1 && s.Status.ReadyReplicas == 3 && cur != upd, nil
	})
	pods := listPods(t, ns)
	for i, want := range []string{cur, cur, upd} {
		p := pods[fmt.Sprintf("db-%d", i)]
		if got := p.Labels[appsv1.ControllerRevisionHashLabelKey]; got != want {
			t.Errorf("db-%d has revision %s, want %s", i, got, want)
		}
		recreated := p.UID != oldUIDs[p.Name]
		if recreated != (i == 2) {
			t.Errorf("db-%d recreated=%v, want %v", i, recreated, i == 2)
		}
	}
	if img := pods["db-2"].Spec.Containers[0].Image; img != "registry.example/app:v2" {
		t.Errorf("db-2 runs %s, want the new image", img)
	}
}

func TestResizeOfflineCompletesOnlyAfterPodRestart(t *testing.T) {
	ns := cluster.NewNamespace(t)
	ctx := context.Background()
	createStatefulSet(t, newStatefulSet(ns, "off", 1, "testbed-offline"))
	waitReady(t, ns, "off", 1)
	pod := getPod(t, ns, "off-0")

	resizePVC(t, ns, "data-off-0", "2Gi")
	pvc := waitPVC(t, ns, "data-off-0", "NodeResizePending", func(pvc *corev1.PersistentVolumeClaim) bool {
		return resizeStatus(pvc) == corev1.PersistentVolumeClaimNodeResizePending
	})
	if !hasCondition(pvc, corev1.PersistentVolumeClaimFileSystemResizePending) {
		t.Errorf("want condition FileSystemResizePending, got %v", pvc.Status.Conditions)
	}
	if got := pvc.Status.AllocatedResources.Storage().String(); got != "2Gi" {
		t.Errorf("allocatedResources %s, want 2Gi", got)
	}
	if got := pvc.Status.Capacity.Storage().String(); got != "1Gi" {
		t.Errorf("capacity %s while the file system resize is pending, want 1Gi", got)
	}
	waitFor(t, 10*time.Second, "PV capacity 2Gi", func() (bool, error) {
		pv, err := cluster.Client.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
		return err == nil && pv.Spec.Capacity.Storage().String() == "2Gi", err
	})

	// Still pending while the old pod runs.
	time.Sleep(2 * time.Second)
	pvc = getPVC(t, ns, "data-off-0")
	if resizeStatus(pvc) != corev1.PersistentVolumeClaimNodeResizePending {
		t.Fatalf("resize finished without a pod restart: %+v", pvc.Status)
	}

	if err := cluster.Client.CoreV1().Pods(ns).Delete(ctx, "off-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "off-0 recreated and Ready", func() (bool, error) {
		p, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, "off-0", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil && p.UID != pod.UID && isReady(p), err
	})
	pvc = waitPVC(t, ns, "data-off-0", "resize finished", func(pvc *corev1.PersistentVolumeClaim) bool {
		return pvc.Status.Capacity.Storage().String() == "2Gi"
	})
	assertResizeDone(t, pvc)
}

func TestResizeOnlineCompletesWithoutRestart(t *testing.T) {
	ns := cluster.NewNamespace(t)
	createStatefulSet(t, newStatefulSet(ns, "on", 1, "testbed-online"))
	waitReady(t, ns, "on", 1)
	pod := getPod(t, ns, "on-0")

	resizePVC(t, ns, "data-on-0", "3Gi")
	pvc := waitPVC(t, ns, "data-on-0", "resize finished", func(pvc *corev1.PersistentVolumeClaim) bool {
		return pvc.Status.Capacity.Storage().String() == "3Gi"
	})
	assertResizeDone(t, pvc)
	if now := getPod(t, ns, "on-0"); now.UID != pod.UID {
		t.Errorf("pod was recreated (%s -> %s); an online resize needs no restart", pod.UID, now.UID)
	}
}

func TestResizeFailingIsInfeasible(t *testing.T) {
	ns := cluster.NewNamespace(t)
	createStatefulSet(t, newStatefulSet(ns, "bad", 1, "testbed-failing"))
	waitReady(t, ns, "bad", 1)

	resizePVC(t, ns, "data-bad-0", "5Gi")
	pvc := waitPVC(t, ns, "data-bad-0", "ControllerResizeInfeasible", func(pvc *corev1.PersistentVolumeClaim) bool {
		return resizeStatus(pvc) == corev1.PersistentVolumeClaimControllerResizeInfeasible
	})
	if !hasCondition(pvc, corev1.PersistentVolumeClaimControllerResizeError) {
		t.Errorf("want condition ControllerResizeError, got %v", pvc.Status.Conditions)
	}
	if hasCondition(pvc, corev1.PersistentVolumeClaimResizing) {
		t.Errorf("condition Resizing still set after the failure")
	}
	if got := pvc.Status.Capacity.Storage().String(); got != "1Gi" {
		t.Errorf("capacity %s after a failed resize, want 1Gi", got)
	}

	// A smaller request (recovery from a failed expansion) is tried again.
	resizePVC(t, ns, "data-bad-0", "2Gi")
	pvc = waitPVC(t, ns, "data-bad-0", "retried at 2Gi and infeasible again", func(pvc *corev1.PersistentVolumeClaim) bool {
		return pvc.Status.AllocatedResources.Storage().String() == "2Gi" &&
			resizeStatus(pvc) == corev1.PersistentVolumeClaimControllerResizeInfeasible
	})
	if got := pvc.Status.Capacity.Storage().String(); got != "1Gi" {
		t.Errorf("capacity %s, want 1Gi", got)
	}
}

func TestResizeFixedIsRefused(t *testing.T) {
	ns := cluster.NewNamespace(t)
	createStatefulSet(t, newStatefulSet(ns, "fix", 1, "testbed-fixed"))
	waitReady(t, ns, "fix", 1)
	patch := `{"spec":{"resources":{"requests":{"storage":"2Gi"}}}}`
	_, err := cluster.Client.CoreV1().PersistentVolumeClaims(ns).Patch(context.Background(), "data-fix-0", types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("want Forbidden from the API server, got %v", err)
	}
}

func TestBrokenImageRunsButNeverBecomesReady(t *testing.T) {
	ns := cluster.NewNamespace(t)
	ctx := context.Background()
	good := newPod(ns, "good", "registry.example/app:v1")
	broken := newPod(ns, "broken", "registry.example/app:broken")
	for _, p := range []*corev1.Pod{good, broken} {
		if _, err := cluster.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 20*time.Second, "good Ready, broken Running", func() (bool, error) {
		g, b := getPod(t, ns, "good"), getPod(t, ns, "broken")
		return isReady(g) && b.Status.Phase == corev1.PodRunning, nil
	})
	time.Sleep(2 * time.Second)
	if b := getPod(t, ns, "broken"); isReady(b) || b.Status.Phase != corev1.PodRunning {
		t.Fatalf("broken pod: phase %s ready %v, want Running and not Ready", b.Status.Phase, isReady(b))
	}
}

func TestReadyDelayAnnotation(t *testing.T) {
	ns := cluster.NewNamespace(t)
	p := newPod(ns, "slow", "registry.example/app:v1")
	p.Annotations = map[string]string{"testbed.kubectl-sts.io/ready-delay": "2s"}
	if _, err := cluster.Client.CoreV1().Pods(ns).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "slow Running", func() (bool, error) {
		return getPod(t, ns, "slow").Status.Phase == corev1.PodRunning, nil
	})
	time.Sleep(time.Second)
	if isReady(getPod(t, ns, "slow")) {
		t.Fatal("Ready within 1s of Running despite a 2s ready-delay")
	}
	waitFor(t, 20*time.Second, "slow Ready", func() (bool, error) { return isReady(getPod(t, ns, "slow")), nil })
	got := getPod(t, ns, "slow")
	t.Logf("Running at %s, Ready at %s", got.Status.StartTime, readySince(got))
}

func TestExecRunsLocalCommand(t *testing.T) {
	ns := cluster.NewNamespace(t)
	ctx := context.Background()
	dir := t.TempDir()
	if err := cluster.MapExec(ctx, testbed.ExecMapping{Namespace: ns, Env: map[string]string{"GREETING": "hello"}, WorkDir: dir}); err != nil {
		t.Fatal(err)
	}
	if err := cluster.MapExec(ctx, testbed.ExecMapping{Namespace: ns, Pod: "special", Env: map[string]string{"GREETING": "special"}, WorkDir: dir}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"plain", "special"} {
		if _, err := cluster.Client.CoreV1().Pods(ns).Create(ctx, newPod(ns, name, "registry.example/app:v1"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 20*time.Second, "pods Ready", func() (bool, error) {
		return isReady(getPod(t, ns, "plain")) && isReady(getPod(t, ns, "special")), nil
	})

	var out string
	var err error
	// kwok picks up a new mapping asynchronously; allow it a moment.
	waitFor(t, 15*time.Second, "exec mapped", func() (bool, error) {
		out, err = cluster.Kubectl(ctx, "exec", "-n", ns, "plain", "--", "sh", "-c", `echo "$GREETING from $(pwd)"`)
		return err == nil, nil
	})
	if want := "hello from " + dir; strings.TrimSpace(out) != want {
		t.Errorf("exec output %q, want %q", out, want)
	}
	out, err = cluster.Kubectl(ctx, "exec", "-n", ns, "special", "--", "sh", "-c", `echo "$GREETING"`)
	if err != nil || strings.TrimSpace(out) != "special" {
		t.Errorf("exec on the pod-scoped mapping: %q, %v", out, err)
	}
	_, err = cluster.Kubectl(ctx, "exec", "-n", ns, "plain", "--", "sh", "-c", "exit 3")
	if err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("failing command: want an error with \"exit status 3\", got %v", err)
	}

	// Through the test bed's executor, a command's exit is its exit code,
	// as with a kubelet; a failure to exec stays an error.
	ex := cluster.Executor()
	res, err := ex.Exec(ctx, kube.ExecRequest{Namespace: ns, Pod: "plain", Command: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}})
	if err != nil || res.ExitCode != 3 || strings.TrimSpace(string(res.Stdout)) != "out" || strings.TrimSpace(string(res.Stderr)) != "err" {
		t.Errorf("exit 3 through the executor: %+v, %v; want exit code 3 with the output and no error", res, err)
	}
	res, err = ex.Exec(ctx, kube.ExecRequest{Namespace: ns, Pod: "plain", Command: []string{"sh", "-c", "exit 0"}})
	if err != nil || res.ExitCode != 0 {
		t.Errorf("exit 0 through the executor: %+v, %v", res, err)
	}
	res, err = ex.Exec(ctx, kube.ExecRequest{Namespace: ns, Pod: "plain", Command: []string{"/nonexistent/command"}})
	if err == nil {
		t.Errorf("a command that cannot start: want an error, got %+v", res)
	}
	_, err = ex.Exec(ctx, kube.ExecRequest{Namespace: ns, Pod: "missing", Command: []string{"true"}})
	if err == nil {
		t.Error("exec in a missing pod: want an error")
	}
}

// TestTwoClustersDoNotInterfere starts two more clusters at once, next to
// the shared one.
func TestTwoClustersDoNotInterfere(t *testing.T) {
	ctx := context.Background()
	var wg sync.WaitGroup
	clusters := make([]*testbed.Cluster, 2)
	errs := make([]error, 2)
	for i := range clusters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			clusters[i], errs[i] = testbed.Start(ctx, testbed.Options{Name: fmt.Sprintf("twin%d", i), Nodes: 1, Logf: t.Logf})
		}()
	}
	wg.Wait()
	for i, c := range clusters {
		t.Cleanup(func() {
			if err := c.Stop(context.Background()); err != nil {
				t.Errorf("stopping %s: %v", c.Name, err)
			}
		})
		if errs[i] != nil {
			t.Fatalf("cluster %d: %v", i, errs[i])
		}
		t.Logf("cluster %s started in %s (concurrently with another)", c.Name, c.StartupTime.Round(time.Millisecond))
	}
	a, b := clusters[0], clusters[1]
	if a.RESTConfig.Host == b.RESTConfig.Host || a.RESTConfig.Host == cluster.RESTConfig.Host {
		t.Fatalf("API servers share an address: %s %s %s", a.RESTConfig.Host, b.RESTConfig.Host, cluster.RESTConfig.Host)
	}
	for i, c := range clusters {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "marker", Namespace: "default"}, Data: map[string]string{"cluster": c.Name}}
		if _, err := c.Client.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatalf("cluster %d: %v", i, err)
		}
	}
	for _, c := range append(clusters, cluster) {
		cm, err := c.Client.CoreV1().ConfigMaps("default").Get(ctx, "marker", metav1.GetOptions{})
		switch {
		case c == cluster && !apierrors.IsNotFound(err):
			t.Errorf("shared cluster sees a marker: %v %v", cm, err)
		case c != cluster && (err != nil || cm.Data["cluster"] != c.Name):
			t.Errorf("cluster %s: marker %v, %v", c.Name, cm, err)
		}
		nodes, err := c.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("cluster %s at %s has %d nodes", c.Name, c.RESTConfig.Host, len(nodes.Items))
	}
	// Both twins run pods.
	for _, c := range clusters {
		p := newPod("default", "probe", "registry.example/app:v1")
		if _, err := c.Client.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 30*time.Second, "probe pods Ready in both twins", func() (bool, error) {
		for _, c := range clusters {
			p, err := c.Client.CoreV1().Pods("default").Get(ctx, "probe", metav1.GetOptions{})
			if err != nil || !isReady(p) {
				return false, nil
			}
		}
		return true, nil
	})

	// Stop is idempotent and removes the work directory.
	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(a.WorkDir); !os.IsNotExist(err) {
		t.Errorf("work dir %s still there after Stop: %v", a.WorkDir, err)
	}
	if _, err := b.Client.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{}); err != nil {
		t.Errorf("stopping one cluster broke the other: %v", err)
	}
}

// --- helpers ---

func newStatefulSet(ns, name string, replicas int32, storageClass string) *appsv1.StatefulSet {
	labels := map[string]string{"app": name}
	pvc := corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data"},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			},
		},
	}
	if storageClass != "" {
		pvc.Spec.StorageClassName = &storageClass
	}
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    &replicas,
			ServiceName: name,
			Selector:    &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{
						Name:         "app",
						Image:        "registry.example/app:v1",
						VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}},
					}},
				},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{pvc},
		},
	}
}

// TestDeletedStatefulSetPodIsReplacedExactlyOnce deletes pods as the plugin
// does (graceful, with a UID precondition) and checks that the fake kubelet
// finishes the deleted pod and nothing else: one deletion, one replacement,
// and the replacement stays. KWOK deletes pods by name, so a second delete
// of the old pod that lands after the StatefulSet controller recreated it
// would take the replacement too, and show as one UID more.
func TestDeletedStatefulSetPodIsReplacedExactlyOnce(t *testing.T) {
	ns := cluster.NewNamespace(t)
	ctx := context.Background()
	const replicas, rounds = 3, 4
	createStatefulSet(t, newStatefulSet(ns, "db", replicas, ""))
	waitReady(t, ns, "db", replicas)

	// The pod-delete stage's precondition: a patch that names another
	// pod's UID is refused.
	_, err := cluster.Client.CoreV1().Pods(ns).Patch(ctx, "db-0", types.MergePatchType,
		[]byte(`{"metadata":{"uid":"00000000-0000-0000-0000-000000000000","annotations":{"testbed.kubectl-sts.io/stopping":"true"}}}`), metav1.PatchOptions{})
	if !apierrors.IsInvalid(err) {
		t.Fatalf("a patch with another pod's UID: want Invalid, got %v", err)
	}

	w, err := cluster.Client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	history := map[string][]types.UID{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			mu.Lock()
			if h := history[p.Name]; len(h) == 0 || h[len(h)-1] != p.UID {
				history[p.Name] = append(h, p.UID)
			}
			mu.Unlock()
		}
	}()

	for range rounds {
		for i := range replicas {
			name := fmt.Sprintf("db-%d", i)
			old := getPod(t, ns, name)
			err := cluster.Client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{Preconditions: metav1.NewUIDPreconditions(string(old.UID))})
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, 60*time.Second, name+" replaced and Ready", func() (bool, error) {
				p, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
				if apierrors.IsNotFound(err) {
					return false, nil
				}
				return err == nil && p.UID != old.UID && p.DeletionTimestamp == nil && isReady(p), err
			})
		}
	}
	// A late second delete lands within the stage's jitter (100ms); give it
	// ample time to show.
	time.Sleep(2 * time.Second)
	w.Stop()
	<-done

	current := podUIDs(t, ns)
	mu.Lock()
	defer mu.Unlock()
	for i := range replicas {
		name := fmt.Sprintf("db-%d", i)
		h := history[name]
		if len(h) != rounds+1 || h[len(h)-1] != current[name] {
			t.Errorf("pod %s: %d UIDs over %d deletions, want %d ending with the current %s: %v", name, len(h), rounds, rounds+1, current[name], h)
		}
	}
	if t.Failed() {
		t.Logf("what the fake kubelet did in %s:\n%s", ns, grep(cluster.LogPath("kwok-controller"), ns+"/"))
	}
}

// grep returns the lines of a file that contain s.
func grep(path, s string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

func newPod(ns, name, image string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
	}
}

func createStatefulSet(t *testing.T, sts *appsv1.StatefulSet) {
	t.Helper()
	if _, err := cluster.Client.AppsV1().StatefulSets(sts.Namespace).Create(context.Background(), sts, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func waitReady(t *testing.T, ns, name string, replicas int32) {
	t.Helper()
	waitFor(t, 60*time.Second, fmt.Sprintf("statefulset %s %d/%d Ready", name, replicas, replicas), func() (bool, error) {
		s, err := cluster.Client.AppsV1().StatefulSets(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return s.Status.ObservedGeneration == s.Generation && s.Status.ReadyReplicas == replicas && s.Status.UpdatedReplicas == replicas, nil
	})
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	start := time.Now()
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		return cond()
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
	t.Logf("%s after %s", what, time.Since(start).Round(10*time.Millisecond))
}

func getPod(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	p, err := cluster.Client.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func listPods(t *testing.T, ns string) map[string]*corev1.Pod {
	t.Helper()
	list, err := cluster.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pods := map[string]*corev1.Pod{}
	for i := range list.Items {
		pods[list.Items[i].Name] = &list.Items[i]
	}
	return pods
}

func podUIDs(t *testing.T, ns string) map[string]types.UID {
	uids := map[string]types.UID{}
	for name, p := range listPods(t, ns) {
		uids[name] = p.UID
	}
	return uids
}

func getPVC(t *testing.T, ns, name string) *corev1.PersistentVolumeClaim {
	t.Helper()
	pvc, err := cluster.Client.CoreV1().PersistentVolumeClaims(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return pvc
}

func waitPVC(t *testing.T, ns, name, what string, cond func(*corev1.PersistentVolumeClaim) bool) *corev1.PersistentVolumeClaim {
	t.Helper()
	var pvc *corev1.PersistentVolumeClaim
	waitFor(t, 30*time.Second, "PVC "+name+" "+what, func() (bool, error) {
		var err error
		pvc, err = cluster.Client.CoreV1().PersistentVolumeClaims(ns).Get(context.Background(), name, metav1.GetOptions{})
		return err == nil && cond(pvc), err
	})
	return pvc
}

func resizePVC(t *testing.T, ns, name, size string) {
	t.Helper()
	patch := fmt.Sprintf(`{"spec":{"resources":{"requests":{"storage":%q}}}}`, size)
	if _, err := cluster.Client.CoreV1().PersistentVolumeClaims(ns).Patch(context.Background(), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatalf("resizing %s to %s: %v", name, size, err)
	}
}

func assertResizeDone(t *testing.T, pvc *corev1.PersistentVolumeClaim) {
	t.Helper()
	if s := resizeStatus(pvc); s != "" {
		t.Errorf("allocatedResourceStatuses still %q", s)
	}
	for _, c := range []corev1.PersistentVolumeClaimConditionType{
		corev1.PersistentVolumeClaimResizing, corev1.PersistentVolumeClaimFileSystemResizePending,
	} {
		if hasCondition(pvc, c) {
			t.Errorf("condition %s still set", c)
		}
	}
}

func resizeStatus(pvc *corev1.PersistentVolumeClaim) corev1.ClaimResourceStatus {
	return pvc.Status.AllocatedResourceStatuses[corev1.ResourceStorage]
}

func hasCondition(pvc *corev1.PersistentVolumeClaim, ct corev1.PersistentVolumeClaimConditionType) bool {
	for _, c := range pvc.Status.Conditions {
		if c.Type == ct && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func isReady(p *corev1.Pod) bool {
	return !readySince(p).IsZero()
}

func readySince(p *corev1.Pod) time.Time {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return c.LastTransitionTime.Time
		}
	}
	return time.Time{}
}

func ptr[T any](v T) *T { return &v }

func ptrString(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
