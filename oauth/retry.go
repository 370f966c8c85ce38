package oauth

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"
)

// Retry policy for transient failures (5xx, 429, transport errors): capped
// exponential backoff with full jitter, honouring Retry-After. Permanent errors
// (invalid_client, invalid_grant, 4xx) are never retried.
type Retry struct {
	MaxAttempts int           // total attempts; default 8
	Base        time.Duration // first backoff; default 100ms
	Max         time.Duration // cap on one backoff; default 3s
}

func (r Retry) withDefaults() Retry {
	if r.MaxAttempts <= 0 {
		r.MaxAttempts = 8
	}
	if r.Base <= 0 {
		r.Base = 100 * time.Millisecond
	}
	if r.Max <= 0 {
		r.Max = 3 * time.Second
	}
	return r
}

// retryAfter is carried by errors from a response with a Retry-After header.
type retryAfter interface{ retryAfter() time.Duration }

// Do runs fn until it succeeds, fails permanently, runs out of attempts, or ctx ends.
// onRetry, if set, is told of each retry.
func (r Retry) Do(ctx context.Context, fn func(context.Context) error, onRetry func(attempt int, wait time.Duration, err error)) error {
	return r.DoIf(ctx, fn, IsTemporary, onRetry)
}

// DoIf is Do with its own test of which errors are worth another attempt.
func (r Retry) DoIf(ctx context.Context, fn func(context.Context) error, retryable func(error) bool, onRetry func(attempt int, wait time.Duration, err error)) error {
	r = r.withDefaults()
	var err error
	for attempt := 1; ; attempt++ {
		if err = fn(ctx); err == nil || !retryable(err) || attempt >= r.MaxAttempts {
			return err
		}
		backoff := r.Base << (attempt - 1)
		if backoff > r.Max || backoff <= 0 {
			backoff = r.Max
		}
		wait := time.Duration(rand.Int64N(int64(backoff)) + 1)
		if ra, ok := err.(retryAfter); ok && ra.retryAfter() > 0 {
			wait = min(ra.retryAfter(), 30*time.Second)
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return err // no time left for another attempt
		}
		if onRetry != nil {
			onRetry(attempt, wait, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// NotProcessed reports whether a failed request certainly never reached the
// server's processing: the connection was never made (dial error, refused), or the
// server answered 429 or 503 with Retry-After (it declined the request). Only such
// failures may be retried with a single-use grant (a refresh token, an authorization
// code): a lost answer may mean the grant was redeemed, and redeeming it again would
// make the identity provider revoke the whole token family.
func NotProcessed(err error) bool {
	var te *TokenError
	if errors.As(err, &te) && te.StatusCode != 0 {
		return (te.StatusCode == http.StatusTooManyRequests || te.StatusCode == http.StatusServiceUnavailable) && te.wait > 0
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return true
	}
	var de *net.DNSError
	return errors.As(err, &de) || errors.Is(err, syscall.ECONNREFUSED)
}

func parseRetryAfter(h http.Header) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return time.Until(t)
	}
	return 0
}
