package wait

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

// listWatcher is the List and Watch half of a typed client, e.g.
// client.CoreV1().Pods(ns).
type listWatcher[L runtime.Object] interface {
	List(ctx context.Context, o metav1.ListOptions) (L, error)
	Watch(ctx context.Context, o metav1.ListOptions) (watch.Interface, error)
}

// filtered returns a ListWatch over api whose every request is narrowed by
// narrow (a field or label selector). It works on fake clientsets too, which
// cache.NewFilteredListWatchFromClient, needing a REST client, does not.
func filtered[L runtime.Object](api listWatcher[L], narrow func(*metav1.ListOptions)) *cache.ListWatch {
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			narrow(&o)
			return api.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			narrow(&o)
			return api.Watch(ctx, o)
		},
	}
}

// informerSpec describes one small informer: a single list+watch, filtered
// server side by field or label selector.
type informerSpec struct {
	what    string // e.g. "pods of statefulset default/db", for errors
	lw      *cache.ListWatch
	client  any // the clientset behind lw, consulted for WatchList support
	objType runtime.Object
	// onAdd, if set, receives additions instead of onUpsert, with whether
	// they belong to the initial list.
	onAdd    func(obj any, initial bool)
	onUpsert func(obj any)
	onDelete func(obj any)
	onError  func(err error)
}

// startInformer runs an informer until ctx is done and blocks until its
// initial list has been delivered to the handlers, or syncCtx (which should
// be ctx or derived from it) is done. The informer goroutine is registered
// with wg. Errors that retrying cannot fix (RBAC, invalid
// selectors, unknown resource) abort the initial sync; transient errors are
// retried by the reflector with backoff until ctx is done.
func startInformer(ctx, syncCtx context.Context, wg *sync.WaitGroup, spec informerSpec) error {
	inf := cache.NewSharedIndexInformerWithOptions(cache.ToListWatcherWithWatchListSemantics(spec.lw, spec.client), spec.objType, cache.SharedIndexInformerOptions{
		ObjectDescription: spec.what,
	})
	fatal := make(chan error, 1)
	// Replacing the default handler also keeps client-go from logging watch
	// errors on its own; they are surfaced through the wait errors instead.
	if err := inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
		if isRoutineWatchEnd(err) {
			return
		}
		if spec.onError != nil {
			spec.onError(err)
		}
		if isPermanentError(err) {
			select {
			case fatal <- err:
			default:
			}
		}
	}); err != nil {
		return err
	}
	reg, err := inf.AddEventHandler(cache.ResourceEventHandlerDetailedFuncs{
		AddFunc: func(obj any, initial bool) {
			if spec.onAdd != nil {
				spec.onAdd(obj, initial)
				return
			}
			spec.onUpsert(obj)
		},
		UpdateFunc: func(_, obj any) { spec.onUpsert(obj) },
		DeleteFunc: func(obj any) { spec.onDelete(obj) },
	})
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(quietContext(ctx))
	wg.Go(func() {
		defer cancel()
		inf.RunWithContext(runCtx)
	})
	select {
	case <-reg.HasSyncedChecker().Done():
		return nil
	case err := <-fatal:
		cancel()
		return fmt.Errorf("watching %s: %w", spec.what, err)
	case <-syncCtx.Done():
		cancel()
		return fmt.Errorf("watching %s: %w", spec.what, syncCtx.Err())
	}
}

// quietContext returns ctx with a logger that discards everything, unless
// ctx already carries a logger. client-go logs through the context's logger
// and falls back to the global klog logger, which writes to stderr; this
// package must not print, but a caller that wants client-go's diagnostics
// can put a logger into the context.
func quietContext(ctx context.Context) context.Context {
	if _, err := logr.FromContext(ctx); err == nil {
		return ctx
	}
	return logr.NewContext(ctx, logr.Discard())
}

// isRoutineWatchEnd reports errors that are part of normal watch operation:
// the server closed the watch or its resource version expired, after which
// the reflector re-watches or relists on its own.
func isRoutineWatchEnd(err error) bool {
	return apierrors.IsResourceExpired(err) || apierrors.IsGone(err) || errors.Is(err, context.Canceled)
}

// isPermanentError reports API errors that retrying will not fix.
func isPermanentError(err error) bool {
	return apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) ||
		apierrors.IsBadRequest(err) || apierrors.IsInvalid(err) ||
		apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err)
}
