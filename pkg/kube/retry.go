package kube

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
)

// Retry says how transient API failures are ridden out: every request the
// shared client sends is repeated after a 5xx answer of the kind a busy or
// restarting API server gives (500, 502, 503, 504), a 429, a connection
// reset or refused, an EOF or a timeout, with exponential backoff (or the
// server's Retry-After), until the request's context ends or MaxElapsed
// has passed. Other answers (403, 404, 409, 422, ...) are returned at once.
//
// A repeated write is safe because the workflows send them with
// preconditions: an update carries the resourceVersion it was read at, a
// delete the object's UID, a patch sets absolute values; a write whose
// first attempt applied is then answered with a conflict or NotFound, which
// its caller recognises.
type Retry struct {
	// Base is the first delay; it doubles up to Cap, with jitter.
	Base, Cap time.Duration
	// MaxElapsed bounds the retries of one request when its context has
	// no earlier deadline.
	MaxElapsed time.Duration
	// OnRetry, when set, hears of each retry (tests count them).
	OnRetry func(req *http.Request, attempt int, reason string, delay time.Duration)

	// answered is set once the API server has answered a request of any
	// client wrapped by this Retry; see Wrap.
	answered *atomic.Bool
}

// DefaultRetry is what NewClient uses.
func DefaultRetry() Retry {
	return Retry{Base: 100 * time.Millisecond, Cap: 5 * time.Second, MaxElapsed: 2 * time.Minute}
}

// Wrap returns next wrapped in the retries; it fits rest.Config.Wrap.
// Until the API server has answered once, a connection that cannot be
// opened (nothing listens, no route) is final, as in kubectl: a wrong
// address or a cluster that is down fails at once instead of after
// MaxElapsed. Once it has answered, the same failure is a restart to ride
// out. The clients of one Retry share what they have seen (Shared).
func (r Retry) Wrap(next http.RoundTripper) http.RoundTripper {
	if r.answered == nil {
		r.answered = new(atomic.Bool)
	}
	return &retryTransport{next: next, r: r}
}

// Shared returns r with one record of whether the API server has answered,
// for every transport it wraps.
func (r Retry) Shared() Retry {
	if r.answered == nil {
		r.answered = new(atomic.Bool)
	}
	return r
}

type retryTransport struct {
	next http.RoundTripper
	r    Retry
}

// WrappedRoundTripper lets client-go see through the wrapper.
func (t *retryTransport) WrappedRoundTripper() http.RoundTripper { return t.next }

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !replayable(req) {
		return t.next.RoundTrip(req)
	}
	ctx := req.Context()
	give := time.Now().Add(t.r.MaxElapsed)
	if d, ok := ctx.Deadline(); ok && d.Before(give) {
		give = d
	}
	// last is the most recent transient answer, kept so that an attempt
	// cut short by the request's deadline ends with what the server said
	// rather than with a bare "context deadline exceeded".
	var last *answer
	for attempt := 1; ; attempt++ {
		try := req
		if attempt > 1 && req.Body != nil && req.Body != http.NoBody {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			try = req.Clone(ctx)
			try.Body = body
		}
		resp, err := t.next.RoundTrip(try)
		if err != nil && last != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return last.response(req), nil
		}
		if err == nil {
			t.r.answered.Store(true)
		} else if !t.r.answered.Load() && dialFailed(err) {
			return resp, err
		}
		reason, delay := t.transient(resp, err, attempt)
		if reason == "" || ctx.Err() != nil || time.Now().Add(delay).After(give) {
			return resp, err
		}
		if resp != nil {
			last = keep(resp)
		}
		if t.r.OnRetry != nil {
			t.r.OnRetry(req, attempt, reason, delay)
		}
		if err := wait.Sleep(ctx, delay); err != nil {
			if last != nil && errors.Is(err, context.DeadlineExceeded) {
				return last.response(req), nil
			}
			return nil, err
		}
	}
}

// answer is a transient response read into memory, so that it can still
// be returned after the connection it came on is gone.
type answer struct {
	resp *http.Response
	body []byte
}

// keep reads resp's body (up to 64 KiB, as much as a Status needs) and
// closes it.
func keep(resp *http.Response) *answer {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return &answer{resp: resp, body: body}
}

func (a *answer) response(req *http.Request) *http.Response {
	r := *a.resp
	r.Request = req
	r.Body = io.NopCloser(bytes.NewReader(a.body))
	r.ContentLength = int64(len(a.body))
	return &r
}

// replayable excludes what cannot be sent twice: streams upgraded to
// exec, attach or port-forward, and bodies that cannot be read again.
func replayable(req *http.Request) bool {
	if req.Header.Get("Upgrade") != "" {
		return false
	}
	p := req.URL.Path
	for _, sub := range []string{"/exec", "/attach", "/portforward", "/proxy"} {
		if strings.HasSuffix(p, sub) || strings.Contains(p, sub+"/") {
			return false
		}
	}
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

// transient names why the outcome is worth another attempt and how long
// to wait first; "" means it is final.
func (t *retryTransport) transient(resp *http.Response, err error, attempt int) (string, time.Duration) {
	backoff := t.backoff(attempt)
	if err != nil {
		if reason := transientError(err); reason != "" {
			return reason, backoff
		}
		return "", 0
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
			// The server's own estimate, capped by ours.
			backoff = min(time.Duration(s)*time.Second, t.r.Cap)
		}
		return resp.Status, backoff
	}
	return "", 0
}

// transientError recognises failures of the connection rather than of
// the request.
func transientError(err error) string {
	var nerr net.Error
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return ""
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed (EOF)"
	case errors.As(err, &nerr) && nerr.Timeout():
		return "timeout"
	case strings.Contains(err.Error(), "connection reset by peer"),
		strings.Contains(err.Error(), "use of closed network connection"),
		strings.Contains(err.Error(), "http2: server sent GOAWAY"):
		return "connection lost"
	}
	return ""
}

// dialFailed tells whether err is a connection that could not be opened.
func dialFailed(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func (t *retryTransport) backoff(attempt int) time.Duration {
	d := t.r.Base << min(attempt-1, 20)
	if d > t.r.Cap || d <= 0 {
		d = t.r.Cap
	}
	// Up to a quarter less, so that many clients do not retry in step.
	return d - time.Duration(rand.Int64N(int64(d)/4+1))
}
