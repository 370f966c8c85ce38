package cache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned by a closed Cache.
var ErrClosed = errors.New("lakebase: closed")

// CacheEvent describes something a Cache did, for logging.
type CacheEvent struct {
	Name       string    // the cache's name
	Kind       string    // "fetched", "refreshed-ahead", "refresh-failed-kept", "fetch-failed"
	Expiry     time.Time // of the value now held
	Err        error
	Background bool
}

// CacheStats counts what a Cache did.
type CacheStats struct {
	Fetches      int64 // fetches started
	AheadFetches int64 // fetches started in the background, ahead of expiry
	Waits        int64 // Get calls that had to wait for a fetch
	Stalls       int64 // of those, calls that waited after a value had been held: a refresh came too late
	Hits         int64 // Get calls answered from the cache
	Failures     int64 // failed fetches
}

// Cache holds one expiring value. It keeps at most one fetch in flight (concurrent
// callers wait for it, each able to give up on its own context), runs fetches on a
// detached context bounded by Timeout, refreshes ahead of expiry in the background
// while the value is in use, and keeps a still-valid value when a refresh fails.
type Cache[T any] struct {
	Name    string
	Fetch   func(ctx context.Context) (T, time.Time, error) // the value and its expiry (zero: never)
	Timeout time.Duration                                   // bound on one fetch; default 30s
	OnEvent func(CacheEvent)
	// MinSafety, when set, is the least time before expiry at which a value stops
	// being handed out (capped at half its lifetime): workspace tokens use it, since
	// Databricks refuses tokens in their last ~30 s.
	MinSafety time.Duration
	// Floor, when set, is the least time before expiry at which a value stops being
	// handed out, whatever its lifetime (a value fetched already that close is still
	// handed out once): Azure Databricks refuses workspace tokens in their last 30 s
	// however long they lived, so a token with 35 s left is refreshed, not used.
	Floor time.Duration

	once      sync.Once
	base      context.Context
	cancel    context.CancelFunc
	mu        sync.Mutex
	val       T
	exp       time.Time
	fetchedAt time.Time
	has       bool
	used      bool
	inflight  *flight[T]
	timer     *time.Timer
	closed    bool
	wg        sync.WaitGroup

	everHad    bool
	fetchTook  time.Duration // how long the last successful fetch took
	fetchStart time.Time     // when the fetch of the held value started

	fetches, ahead, waits, stalls, hits, failures atomic.Int64
}

type flight[T any] struct {
	started time.Time
	done    chan struct{}
	val     T
	exp     time.Time
	err     error
}

func (c *Cache[T]) init() {
	c.once.Do(func() { c.base, c.cancel = context.WithCancel(context.Background()) })
}

// Margin is how long before its expiry a value stops being handed out: a fifth of
// its lifetime, at most 30 s, so a login that starts with it finishes before it
// expires. Stored credentials are held to the same margin.
func Margin(lifetime time.Duration) time.Duration {
	return min(lifetime/5, 30*time.Second)
}

func safety(lifetime time.Duration) time.Duration { return Margin(lifetime) }

// aheadBy is how long before expiry a background refresh starts: half the lifetime
// (at most 15 minutes: a one-hour credential is refreshed after 45 minutes), or
// twice as long as fetches have been taking when that is more, but never more than
// three quarters of the lifetime. Short lifetimes thus leave the refresh as much
// time as possible before the value stops being handed out.
func aheadBy(lifetime, fetchTook time.Duration) time.Duration {
	return min(max(min(lifetime/2, 15*time.Minute), 2*fetchTook), lifetime*3/4)
}

// Get returns the value, fetching it when there is none or it is about to expire.
func (c *Cache[T]) Get(ctx context.Context) (T, time.Time, error) {
	return c.get(ctx, time.Time{})
}

// GetFetchedAfter is Get for a value whose fetch started after t: after a server
// refused a value at t, neither the held value nor a fetch already under way before
// t will do. It still keeps one fetch in flight: it waits for an older one to end,
// then starts its own.
func (c *Cache[T]) GetFetchedAfter(ctx context.Context, t time.Time) (T, time.Time, error) {
	return c.get(ctx, t)
}

func (c *Cache[T]) get(ctx context.Context, after time.Time) (T, time.Time, error) {
	c.init()
	var zero T
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return zero, time.Time{}, ErrClosed
		}
		if c.has && !c.fetchStart.Before(after) && (c.exp.IsZero() || time.Now().Before(c.exp.Add(-safetyFor(c)))) {
			c.used = true
			v, e := c.val, c.exp
			c.mu.Unlock()
			c.hits.Add(1)
			return v, e, nil
		}
		if c.inflight != nil && c.inflight.started.Before(after) {
			// A fetch that began before the refusal: let it end, then fetch anew.
			f := c.inflight
			c.mu.Unlock()
			select {
			case <-f.done:
				continue
			case <-ctx.Done():
				return zero, time.Time{}, ctx.Err()
			}
		}
		f := c.startLocked(false)
		if c.everHad {
			c.stalls.Add(1)
		}
		c.mu.Unlock()
		c.waits.Add(1)
		select {
		case <-f.done:
			return f.val, f.exp, f.err
		case <-ctx.Done():
			return zero, time.Time{}, ctx.Err()
		}
	}
}

// safetyFor is the safety margin of the value c holds, from its lifetime.
func safetyFor[T any](c *Cache[T]) time.Duration {
	life := c.lifetime()
	return max(safety(life), min(c.MinSafety, life/2), c.Floor)
}

func (c *Cache[T]) lifetime() time.Duration {
	if c.fetchedAt.IsZero() || c.exp.IsZero() {
		return time.Hour
	}
	return c.exp.Sub(c.fetchedAt)
}

// Peek returns the held value without fetching; ok is false when there is none or
// it expired.
func (c *Cache[T]) Peek() (v T, exp time.Time, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.has || (!c.exp.IsZero() && !time.Now().Before(c.exp)) {
		return v, time.Time{}, false
	}
	return c.val, c.exp, true
}

// Set installs a value obtained elsewhere.
func (c *Cache[T]) Set(v T, exp time.Time) {
	c.init()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.installLocked(v, exp)
}

// Invalidate drops the held value if drop reports true for it (e.g. it is the
// credential a server just refused), so the next Get fetches a fresh one.
func (c *Cache[T]) Invalidate(drop func(T) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.has && (drop == nil || drop(c.val)) {
		c.has = false
		var zero T
		c.val = zero
	}
}

// Stats returns the counters.
func (c *Cache[T]) Stats() CacheStats {
	return CacheStats{Fetches: c.fetches.Load(), AheadFetches: c.ahead.Load(), Waits: c.waits.Load(), Stalls: c.stalls.Load(),
		Hits: c.hits.Load(), Failures: c.failures.Load()}
}

// Close stops background refreshes and cancels a fetch in flight; it waits for them.
func (c *Cache[T]) Close() {
	c.init()
	c.mu.Lock()
	c.closed = true
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
}

func (c *Cache[T]) startLocked(background bool) *flight[T] {
	if c.inflight != nil {
		return c.inflight
	}
	f := &flight[T]{started: time.Now(), done: make(chan struct{})}
	c.inflight = f
	c.fetches.Add(1)
	if background {
		c.ahead.Add(1)
	}
	c.wg.Add(1)
	go c.run(f, background)
	return f
}

func (c *Cache[T]) run(f *flight[T], background bool) {
	defer c.wg.Done()
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(c.base, timeout)
	began := time.Now()
	v, exp, err := c.Fetch(ctx)
	took := time.Since(began)
	cancel()

	c.mu.Lock()
	if err == nil {
		c.fetchTook = took
		c.fetchStart = f.started
	}
	var ev CacheEvent
	switch {
	case err == nil:
		if !c.closed {
			c.installLocked(v, exp)
			c.used = !background // a caller asked for this value: it is in use
		}
		f.val, f.exp = v, exp
		ev = CacheEvent{Name: c.Name, Kind: "fetched", Expiry: exp, Background: background}
		if background {
			ev.Kind = "refreshed-ahead"
		}
	case c.has && (c.exp.IsZero() || time.Now().Before(c.exp)):
		// Keep the still-valid value; try again before it runs out.
		c.failures.Add(1)
		f.val, f.exp = c.val, c.exp
		ev = CacheEvent{Name: c.Name, Kind: "refresh-failed-kept", Expiry: c.exp, Err: err, Background: background}
		if !c.closed {
			c.scheduleLocked(max(time.Until(c.exp)/4, 100*time.Millisecond))
		}
	default:
		c.failures.Add(1)
		f.err = err
		ev = CacheEvent{Name: c.Name, Kind: "fetch-failed", Err: err, Background: background}
	}
	c.inflight = nil
	close(f.done)
	c.mu.Unlock()
	if c.OnEvent != nil {
		c.OnEvent(ev)
	}
}

func (c *Cache[T]) installLocked(v T, exp time.Time) {
	c.val, c.exp, c.has, c.everHad = v, exp, true, true
	c.fetchedAt = time.Now()
	c.used = false
	if exp.IsZero() {
		if c.timer != nil {
			c.timer.Stop()
		}
		return
	}
	life := time.Until(exp)
	c.scheduleLocked(life - aheadBy(life, c.fetchTook))
}

func (c *Cache[T]) scheduleLocked(d time.Duration) {
	if c.timer != nil {
		c.timer.Stop()
	}
	c.timer = time.AfterFunc(max(d, 0), c.background)
}

// background refreshes ahead of expiry, but only while the value is in use: an idle
// cache lets its value lapse and fetches on the next Get.
func (c *Cache[T]) background() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || !c.has || !c.used {
		return
	}
	c.startLocked(true)
}
