// Package journal keeps the record of a running operation in the cluster,
// in one ConfigMap per StatefulSet, so that an interrupted operation can be
// resumed from another process or machine and two runs never overlap.
//
// The record is not owned by the StatefulSet on purpose: expand-pvc deletes
// and recreates the StatefulSet, and the record must survive that.
package journal

import (
	"context"
	"crypto/rand"
	"encoding/hex"
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

	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
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
	// Writer and Sequence identify the last write: a process that hears
	// no answer to a write recognises it as its own on the next one.
	Writer   string `json:"writer,omitempty"`
	Sequence int64  `json:"sequence,omitempty"`
	// State is the operation's own progress, opaque to the journal.
	State   json.RawMessage `json:"state,omitempty"`
	History []Entry         `json:"history,omitempty"`

	resourceVersion string
	stored          bool
	// confirmed is the last sequence known to be stored.
	confirmed int64
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
	// Heartbeat is the holder's last renewal, Expires when the lease lapses
	// unless renewed, Now the time of the refusal.
	Heartbeat time.Time
	Expires   time.Time
	Now       time.Time
}

// Age is the time since the holder's last heartbeat.
func (e *HeldError) Age() time.Duration { return e.Now.Sub(e.Heartbeat) }

func (e *HeldError) Error() string {
	return fmt.Sprintf("the %s of this StatefulSet is held by %s (last heartbeat %s ago at %s; its lease expires at %s, in %s): "+
		"if that process is still running, wait for it to finish; if it was stopped or killed, run the command again after %s, "+
		"or now with --take-over (the other process, if alive, stops at its next renewal)",
		e.Operation, e.Holder, e.Age().Round(time.Second), stamp(e.Heartbeat), stamp(e.Expires),
		e.Expires.Sub(e.Now).Round(time.Second), stamp(e.Expires))
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// LeaseLostError stops a run that no longer holds its lease: another
// process took the record over, or the lease could not be renewed in time.
// The run changes nothing more once it sees this.
type LeaseLostError struct {
	// Holder is the process now named in the record; empty when the lease
	// lapsed without a new holder.
	Holder string
	// Err is the last renewal failure when the lease lapsed.
	Err error
}

func (e *LeaseLostError) Error() string {
	if e.Holder != "" {
		return fmt.Sprintf("the operation record was taken over by %s; this run stopped acting", e.Holder)
	}
	return fmt.Sprintf("the lease of the operation record could not be renewed in time (%v); this run stopped before its next change so that no two runs act at once: run the command again when the API server answers", e.Err)
}

func (e *LeaseLostError) Unwrap() error { return e.Err }

// IsLeaseLost reports whether err stopped a run because its lease is lost.
func IsLeaseLost(err error) bool {
	var l *LeaseLostError
	return errors.As(err, &l)
}

// BusyError refuses to start one operation while another is unfinished.
type BusyError struct {
	Operation string
	Phase     Phase
	Started   time.Time
	// StatefulSet, when set, lets the message name the commands that
	// finish or drop the unfinished operation.
	StatefulSet string
	// Held is set while another process holds the operation's lease: it is
	// running now, and the way on is to wait for it.
	Held *HeldError
}

// Busy is the refusal of another operation while rec is unfinished.
func (j *Journal) Busy(rec *Record) *BusyError {
	return &BusyError{Operation: rec.Operation, Phase: rec.Phase, Started: rec.Started, StatefulSet: j.sts, Held: j.Held(rec)}
}

func (e *BusyError) Error() string {
	msg := fmt.Sprintf("an unfinished %s (%s, started %s) is recorded for this StatefulSet; ",
		e.Operation, e.Phase, e.Started.UTC().Format(time.RFC3339))
	if e.Held != nil {
		msg += fmt.Sprintf("%s is running it (last heartbeat %s ago; its lease expires at %s): wait for it to finish; if it was stopped or killed, after its lease expires ",
			e.Held.Holder, e.Held.Age().Round(time.Second), stamp(e.Held.Expires))
	}
	n := e.StatefulSet
	switch {
	case n == "":
		return msg + "resume it or abort it before starting anything else"
	case e.Operation == "rollout":
		return msg + fmt.Sprintf("continue it with: kubectl sts rollout resume %s, undo it with: kubectl sts rollout undo %s, or stop it with: kubectl sts rollout abort %s, before starting anything else", n, n, n)
	case e.Operation == "scale-down":
		return msg + fmt.Sprintf("run the same kubectl sts scale-down %s again to finish it, or drop its record with: kubectl sts scale-down %s --abort, before starting anything else", n, n)
	case e.Operation == "cleanup-pvcs":
		return msg + fmt.Sprintf("run the same kubectl sts cleanup %s again to finish it, or drop its record with: kubectl sts cleanup %s --abort, before starting anything else", n, n)
	case e.Operation == "expand-pvc":
		return msg + fmt.Sprintf("run the same kubectl sts expand-pvc %s again to finish it before starting anything else", n)
	}
	return msg + "resume it or abort it before starting anything else"
}

// Journal reads and writes the record of one StatefulSet.
type Journal struct {
	client    kubernetes.Interface
	namespace string
	sts       string
	holder    string
	lease     time.Duration
	now       func() time.Time
	takeOver  bool

	// mu serialises writes of a record: the heartbeat runs beside the
	// workflow's own saves.
	mu sync.Mutex
	// fence, while a run holds the lease, stops it when no write has
	// renewed the lease in time; every stored write resets it.
	fence *time.Timer
	// renewedAt is when the last stored write that renewed the lease was
	// sent: a heartbeat is due only a third of the lease after it, so a
	// run that saves often sends no heartbeats of its own.
	renewedAt time.Time
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

// WithTakeOver makes Begin take over a lease another process still holds.
func (j *Journal) WithTakeOver(on bool) *Journal {
	j.takeOver = on
	return j
}

// DefaultHolder names this run: host, pid and a random token, so that two
// runs never share a name, even in one process.
func DefaultHolder() string {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown-host"
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b))
}

// TakesOver reports whether Begin takes over a live lease; callers skip
// their early refusals then.
func (j *Journal) TakesOver() bool { return j.takeOver }

// Holder is the name this journal writes into the lease.
func (j *Journal) Holder() string { return j.holder }

// LeaseDuration is how long a heartbeat stays valid.
func (j *Journal) LeaseDuration() time.Duration { return j.lease }

// Held returns the refusal for rec when another process holds its live
// lease, else nil. It is the one liveness rule every command applies.
func (j *Journal) Held(rec *Record) *HeldError {
	if rec == nil || rec.Phase.Finished() || rec.Holder == "" || rec.Holder == j.holder {
		return nil
	}
	now := j.now()
	expires := rec.Heartbeat.Add(j.lease)
	if !now.Before(expires) {
		return nil
	}
	return &HeldError{Operation: rec.Operation, Holder: rec.Holder, Heartbeat: rec.Heartbeat, Expires: expires, Now: now}
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
	r.confirmed = r.Sequence
	return &r, nil
}

// Begin starts operation op, or resumes it when an unfinished record of
// the same operation exists whose lease has expired or was released. It
// returns the record and whether it was resumed. state is stored only for
// a new record. With WithTakeOver, a live lease of another process is
// taken over: the record names this run at once (so the other stops at its
// next renewal) and Begin returns once the other's lease has lapsed.
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
			return nil, false, j.Busy(cur)
		}
		held := j.Held(cur)
		if held != nil && !j.takeOver {
			return nil, false, held
		}
		msg := "resumed by " + j.holder
		if held != nil {
			msg = fmt.Sprintf("taken over by %s from %s (last heartbeat %s)", j.holder, held.Holder, stamp(held.Heartbeat))
		}
		cur.Holder, cur.Heartbeat, cur.Phase = j.holder, now, Running
		cur.History = append(cur.History, Entry{Time: now, Message: msg})
		if err := j.write(ctx, cur); err != nil {
			return nil, false, err
		}
		if held != nil {
			if err := wait.Sleep(ctx, held.Expires.Sub(now)); err != nil {
				return nil, false, err
			}
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
		rec.Sequence, rec.confirmed = cur.Sequence, cur.Sequence
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

// Hold keeps the lease of rec while a run acts. It renews the lease every
// third of its duration and returns a context for the run's actions that
// ends, with a *LeaseLostError as cause, as soon as another process takes
// the record over or no write has renewed the lease for two thirds of its
// duration: the run then stops before another process may take over, so
// two runs never act at once. Failed renewals that leave the lease valid
// are reported to onError. done stops the renewals and returns err, with
// the *LeaseLostError that caused it when the lease was lost.
func (j *Journal) Hold(ctx context.Context, rec *Record, onError func(error)) (held context.Context, done func(err error) error) {
	hctx, cancel := context.WithCancelCause(ctx)
	fenceAfter := j.lease * 2 / 3
	var (
		lastMu  sync.Mutex
		lastErr error
	)
	j.mu.Lock()
	j.fence = time.AfterFunc(fenceAfter, func() {
		lastMu.Lock()
		defer lastMu.Unlock()
		cancel(&LeaseLostError{Err: lastErr})
	})
	j.mu.Unlock()

	finished := make(chan struct{})
	go func() {
		defer close(finished)
		interval := j.lease / 3
		t := time.NewTimer(interval)
		defer t.Stop()
		for {
			select {
			case <-hctx.Done():
				return
			case <-t.C:
			}
			// A save since the last tick renewed the lease already.
			if wait := j.heartbeatDue(interval); wait > 0 {
				t.Reset(wait)
				continue
			}
			actx, acancel := context.WithTimeout(hctx, j.lease/6)
			err := j.Heartbeat(actx, rec)
			acancel()
			next := interval
			switch {
			case err == nil:
			case IsLeaseLost(err):
				cancel(err)
				return
			case hctx.Err() == nil:
				lastMu.Lock()
				lastErr = err
				lastMu.Unlock()
				if onError != nil {
					onError(err)
				}
				// Try again soon: the lease is running out.
				next = j.lease / 10
			}
			t.Reset(next)
		}
	}()
	return hctx, func(err error) error {
		// The cause is read before the renewals are stopped, which cancels
		// the context too.
		cause := context.Cause(hctx)
		cancel(context.Canceled)
		<-finished
		j.mu.Lock()
		j.fence.Stop()
		j.fence = nil
		j.renewedAt = time.Time{}
		j.mu.Unlock()
		var lost *LeaseLostError
		if err == nil || !errors.As(cause, &lost) {
			// A run that finished its work wrote its outcome over its own
			// last write: no one else acted meanwhile.
			return err
		}
		if errors.Is(err, context.Canceled) || IsLeaseLost(err) {
			return lost
		}
		return fmt.Errorf("%w (%v)", lost, err)
	}
}

// write stores rec with optimistic concurrency: a record changed by someone
// else since it was read is a conflict, never silently overwritten. A
// conflict with this journal's own earlier write, whose answer was lost,
// is recognised: the write is adopted, or repeated on top of it.
func (j *Journal) write(ctx context.Context, rec *Record) error {
	started := time.Now()
	rec.Writer = j.holder
	rec.Sequence++
	for attempt := 0; ; attempt++ {
		out, err := j.put(ctx, rec)
		if err == nil {
			rec.resourceVersion, rec.stored, rec.confirmed = out.ResourceVersion, true, rec.Sequence
			j.renewed(rec, started)
			return nil
		}
		name := ConfigMapName(j.sts)
		if !apierrors.IsConflict(err) && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("writing the operation record %s: %w", name, err)
		}
		cur, lerr := j.Load(ctx)
		if lerr != nil {
			return fmt.Errorf("writing the operation record %s: %w (re-reading it: %v)", name, err, lerr)
		}
		if cur == nil || cur.Writer != j.holder || cur.Sequence <= rec.confirmed || cur.Sequence > rec.Sequence || attempt > 0 {
			holder := ""
			if cur != nil {
				holder = cur.Holder
				if holder == "" {
					holder = cur.Writer
				}
			}
			return &LeaseLostError{Holder: holder, Err: fmt.Errorf("the operation record %s was changed by another process: %w", name, err)}
		}
		// The record holds a write of ours whose answer was lost.
		rec.resourceVersion, rec.stored, rec.confirmed = cur.resourceVersion, true, cur.Sequence
		if cur.Sequence == rec.Sequence {
			j.renewed(rec, started)
			return nil
		}
	}
}

// put creates or updates the record's ConfigMap.
func (j *Journal) put(ctx context.Context, rec *Record) (*corev1.ConfigMap, error) {
	raw, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return nil, err
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
	if !rec.stored {
		return j.client.CoreV1().ConfigMaps(j.namespace).Create(ctx, cm, metav1.CreateOptions{})
	}
	return j.client.CoreV1().ConfigMaps(j.namespace).Update(ctx, cm, metav1.UpdateOptions{})
}

// renewed moves the fence after a stored write that names this run as the
// holder; the lease runs from the moment the write was sent.
func (j *Journal) renewed(rec *Record, sent time.Time) {
	if j.fence == nil || rec.Holder != j.holder {
		return
	}
	j.renewedAt = sent
	j.fence.Reset(j.lease*2/3 - time.Since(sent))
}

// heartbeatDue returns how long until the next heartbeat is due, counted
// from the last write that renewed the lease; zero or less means now.
func (j *Journal) heartbeatDue(interval time.Duration) time.Duration {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.renewedAt.IsZero() {
		return 0
	}
	return interval - time.Since(j.renewedAt)
}

// ErrNoRecord is returned by operations that need an existing record.
var ErrNoRecord = errors.New("no operation is recorded for this StatefulSet")
