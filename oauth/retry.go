package oauth

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
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
	r = r.withDefaults()
	var err error
	for attempt := 1; ; attempt++ {
		if err = fn(ctx); err == nil || !IsTemporary(err) || attempt >= r.MaxAttempts {
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
