// Package journal keeps the record of a running operation in the cluster,
// in one ConfigMap per StatefulSet, so that an interrupted operation can be
// resumed from another process or machine and two runs never overlap.
//
// The record is not owned by the StatefulSet on purpose: expand-pvc deletes
// and recreates the StatefulSet, and the record must survive that.
package journal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

const (
	// LabelManagedBy marks every object kubectl-sts creates for bookkeeping.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedBy is the value of LabelManagedBy.
	ManagedBy = "kubectl-sts"
	// LabelStatefulSet names the StatefulSet a record belongs to.
	LabelStatefulSet = "kubectl-sts.io/statefulset"

	dataKey = "record.json"

	// DefaultLeaseDuration is how long a holder's heartbeat stays valid.
	DefaultLeaseDuration = 30 * time.Second
)

// Phase is where an operation stands.
type Phase string

// Phases. Running and Paused are unfinished: a new run resumes them.
const (
	Running    Phase = "Running"
	Paused     Phase = "Paused"
	Succeeded  Phase = "Succeeded"
	Failed     Phase = "Failed"
	RolledBack Phase = "RolledBack"
	Aborted    Phase = "Aborted"
)

// Finished reports whether the phase ends the operation.
func (p Phase) Finished() bool { return p != Running && p != Paused }

// Entry is one line of an operation's history.
type Entry struct {
	Time    time.Time `json:"time"`
	Message string    `json:"message"`
}

// Record is an operation as kept in the cluster.
type Record struct {
	// Operation is "rollout", "scale-down" or "expand-pvc".
	Operation   string    `json:"operation"`
	StatefulSet string    `json:"statefulSet"`
	Phase       Phase     `json:"phase"`
	Started     time.Time `json:"started"`
	// Holder identifies the process running the operation; empty while
	// nobody does (paused, finished, or released after an interruption).
	Holder    string    `json:"holder,omitempty"`
	Heartbeat time.Time `json:"heartbeat,omitempty"`
	// State is the operation's own progress, opaque to the journal.
	State   json.RawMessage `json:"state,omitempty"`
	History []Entry         `json:"history,omitempty"`

	resourceVersion string
	stored          bool
}

// DecodeState unmarshals the operation's state into v.
func (r *Record) DecodeState(v any) error {
	if len(r.State) == 0 {
		return nil
	}
	return json.Unmarshal(r.State, v)
}

// HeldError refuses a second run while another process holds the lease.
type HeldError struct {
	Operation string
	Holder    string
	Age       time.Duration
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("the %s of this StatefulSet is running in another process (%s, last heartbeat %s ago); wait for it, or stop it first",
		e.Operation, e.Holder, e.Age.Round(time.Second))
}

// BusyError refuses to start one operation while another is unfinished.
type BusyError struct {
	Operation string
	Phase     Phase
	Started   time.Time
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("an unfinished %s (%s, started %s) is recorded for this StatefulSet; resume it or abort it before starting anything else",
		e.Operation, e.Phase, e.Started.UTC().Format(time.RFC3339))
}

// Journal reads and writes the record of one StatefulSet.
type Journal struct {
	client    kubernetes.Interface
	namespace string
	sts       string
	holder    string
	lease     time.Duration
	now       func() time.Time

	// mu serialises writes of a record: the heartbeat runs beside the
	// workflow's own saves.
	mu sync.Mutex
}

// New returns the journal of StatefulSet sts. holder identifies this
// process in the lease.
func New(client kubernetes.Interface, namespace, sts, holder string) *Journal {
	return &Journal{client: client, namespace: namespace, sts: sts, holder: holder, lease: DefaultLeaseDuration, now: time.Now}
}

// WithClock sets the clock and lease duration; tests use it.
func (j *Journal) WithClock(now func() time.Time, lease time.Duration) *Journal {
	j.now, j.lease = now, lease
	return j
}

// DefaultHolder names this process: host and pid.
func DefaultHolder() string {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown-host"
	}
	return fmt.Sprintf("%s/%d", host, os.Getpid())
}

// ConfigMapName is the name of the record of StatefulSet sts.
func ConfigMapName(sts string) string { return "kubectl-sts." + sts }

// Load returns the current record, or nil when there is none.
func (j *Journal) Load(ctx context.Context) (*Record, error) {
	cm, err := j.client.CoreV1().ConfigMaps(j.namespace).Get(ctx, ConfigMapName(j.sts), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the operation record %s: %w", ConfigMapName(j.sts), err)
	}
	return decode(cm)
}

func decode(cm *corev1.ConfigMap) (*Record, error) {
	var r Record
	if err := json.Unmarshal([]byte(cm.Data[dataKey]), &r); err != nil {
		return nil, fmt.Errorf("the operation record %s is not readable (%v); delete it with: kubectl delete configmap %s -n %s",
			cm.Name, err, cm.Name, cm.Namespace)
	}
	r.resourceVersion = cm.ResourceVersion
	r.stored = true
	return &r, nil
}

// Begin starts operation op, or resumes it when an unfinished record of
// the same operation exists whose lease has expired or was released. It
// returns the record and whether it was resumed. state is stored only for
// a new record.
func (j *Journal) Begin(ctx context.Context, op string, state any) (*Record, bool, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	cur, err := j.Load(ctx)
	if err != nil {
		return nil, false, err
	}
	now := j.now()
	if cur != nil && !cur.Phase.Finished() {
		if cur.Operation != op {
			return nil, false, &BusyError{Operation: cur.Operation, Phase: cur.Phase, Started: cur.Started}
		}
		if cur.Holder != "" && cur.Holder != j.holder && now.Sub(cur.Heartbeat) < j.lease {
			return nil, false, &HeldError{Operation: op, Holder: cur.Holder, Age: now.Sub(cur.Heartbeat)}
		}
		cur.Holder, cur.Heartbeat, cur.Phase = j.holder, now, Running
		cur.History = append(cur.History, Entry{Time: now, Message: "resumed by " + j.holder})
		if err := j.write(ctx, cur); err != nil {
			return nil, false, err
		}
		return cur, true, nil
	}
	raw, err := json.Marshal(state)
	if err != nil {
		return nil, false, err
	}
	rec := &Record{
		Operation: op, StatefulSet: j.sts, Phase: Running, Started: now,
		Holder: j.holder, Heartbeat: now, State: raw,
		History: []Entry{{Time: now, Message: "started by " + j.holder}},
	}
	if cur != nil {
		rec.resourceVersion, rec.stored = cur.resourceVersion, true
	}
	if err := j.write(ctx, rec); err != nil {
		return nil, false, err
	}
	return rec, false, nil
}

// Save stores the operation state and renews the heartbeat. A message, if
// given, is appended to the history.
func (j *Journal) Save(ctx context.Context, rec *Record, state any, message string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	raw, err := json.Marshal(state)
	if err != nil {
		return err
	}
	rec.State = raw
	rec.Heartbeat = j.now()
	if message != "" {
		rec.History = append(rec.History, Entry{Time: rec.Heartbeat, Message: message})
	}
	return j.write(ctx, rec)
}

// Heartbeat renews the lease without changing the state.
func (j *Journal) Heartbeat(ctx context.Context, rec *Record) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	rec.Heartbeat = j.now()
	return j.write(ctx, rec)
}

// Finish ends the operation with phase and releases the lease. Paused
// releases the lease but leaves the operation unfinished for a resume.
func (j *Journal) Finish(ctx context.Context, rec *Record, phase Phase, message string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	rec.Phase = phase
	rec.Holder = ""
	rec.Heartbeat = j.now()
	if message != "" {
		rec.History = append(rec.History, Entry{Time: rec.Heartbeat, Message: message})
	}
	return j.write(ctx, rec)
}

// Release gives up the lease after an interruption, leaving the record
// Running so the next run resumes at once instead of waiting for expiry.
func (j *Journal) Release(ctx context.Context, rec *Record, message string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	rec.Holder = ""
	if message != "" {
		rec.History = append(rec.History, Entry{Time: j.now(), Message: message})
	}
	return j.write(ctx, rec)
}

// Delete removes the record; a missing record is not an error.
func (j *Journal) Delete(ctx context.Context) error {
	err := j.client.CoreV1().ConfigMaps(j.namespace).Delete(ctx, ConfigMapName(j.sts), metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// KeepAlive renews the lease every third of its duration until ctx ends
// or the returned stop is called. Failed renewals are reported to onError.
func (j *Journal) KeepAlive(ctx context.Context, rec *Record, onError func(error)) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(j.lease / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := j.Heartbeat(ctx, rec); err != nil && ctx.Err() == nil && onError != nil {
					onError(err)
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}

// write stores rec with optimistic concurrency: a record changed by someone
// else since it was read is a conflict, never silently overwritten.
func (j *Journal) write(ctx context.Context, rec *Record) error {
	raw, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name:            ConfigMapName(j.sts),
			Namespace:       j.namespace,
			ResourceVersion: rec.resourceVersion,
			Labels:          map[string]string{LabelManagedBy: ManagedBy, LabelStatefulSet: j.sts},
		},
		Data: map[string]string{dataKey: string(raw)},
	}
	var out *corev1.ConfigMap
	if !rec.stored {
		out, err = j.client.CoreV1().ConfigMaps(j.namespace).Create(ctx, cm, metav1.CreateOptions{})
	} else {
		out, err = j.client.CoreV1().ConfigMaps(j.namespace).Update(ctx, cm, metav1.UpdateOptions{})
	}
	if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("the operation record %s was changed by another process; re-run to resume from what it recorded: %w", cm.Name, err)
	}
	if err != nil {
		return fmt.Errorf("writing the operation record %s: %w", cm.Name, err)
	}
	rec.resourceVersion, rec.stored = out.ResourceVersion, true
	return nil
}

// ErrNoRecord is returned by operations that need an existing record.
var ErrNoRecord = errors.New("no operation is recorded for this StatefulSet")
