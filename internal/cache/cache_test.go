package cache

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestCache_OneFetchInFlightForConcurrentCallers(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int32
	c := &Cache[string]{Fetch: func(ctx context.Context) (string, time.Time, error) {
		calls.Add(1)
		<-release
		return "v", time.Now().Add(time.Hour), nil
	}}
	defer c.Close()
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if v, _, err := c.Get(context.Background()); err != nil || v != "v" {
				t.Errorf("Get = %q, %v", v, err)
			}
		}()
	}
	for c.Stats().Waits < 50 {
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	if calls.Load() != 1 {
		t.Fatalf("fetch ran %d times", calls.Load())
	}
}

func TestCache_WaiterGivesUpOnItsOwnContext(t *testing.T) {
	release := make(chan struct{})
	c := &Cache[string]{Fetch: func(ctx context.Context) (string, time.Time, error) {
		<-release
		return "v", time.Now().Add(time.Hour), nil
	}}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { _, _, err := c.Get(ctx); done <- err }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	// The fetch goes on for the others.
	close(release)
	if v, _, err := c.Get(context.Background()); err != nil || v != "v" {
		t.Fatalf("Get = %q, %v", v, err)
	}
}

func TestCache_FetchRunsOnDetachedContextWithTimeout(t *testing.T) {
	c := &Cache[string]{Timeout: 50 * time.Millisecond, Fetch: func(ctx context.Context) (string, time.Time, error) {
		<-ctx.Done()
		return "", time.Time{}, ctx.Err()
	}}
	defer c.Close()
	_, _, err := c.Get(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}

func TestCache_RefreshesAheadAndKeepsValidValueOnFailure(t *testing.T) {
	var n atomic.Int32
	fail := atomic.Bool{}
	refreshed := make(chan struct{}, 10)
	c := &Cache[int32]{Fetch: func(ctx context.Context) (int32, time.Time, error) {
		if fail.Load() {
			return 0, time.Time{}, errors.New("idp down")
		}
		return n.Add(1), time.Now().Add(2 * time.Second), nil // refreshed ahead at 1.5 s
	}, OnEvent: func(ev CacheEvent) {
		if ev.Background {
			refreshed <- struct{}{}
		}
	}}
	defer c.Close()
	if v, _, _ := c.Get(context.Background()); v != 1 {
		t.Fatalf("first value %d", v)
	}
	<-refreshed // the background refresh at 3/4 of the lifetime
	if v, _, _ := c.Get(context.Background()); v != 2 {
		t.Fatalf("after the refresh ahead: %d", v)
	}
	fail.Store(true)
	<-refreshed // a failing background refresh
	if v, _, err := c.Get(context.Background()); err != nil || v != 2 {
		t.Fatalf("a failed refresh must keep the valid value: %d %v", v, err)
	}
	s := c.Stats()
	if s.AheadFetches < 2 || s.Failures < 1 || s.Stalls != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestCache_IdleValueIsNotRefreshed(t *testing.T) {
	var n atomic.Int32
	c := &Cache[int32]{Fetch: func(ctx context.Context) (int32, time.Time, error) {
		return n.Add(1), time.Now().Add(200 * time.Millisecond), nil
	}}
	defer c.Close()
	c.Get(context.Background())
	time.Sleep(600 * time.Millisecond) // past three refresh points with no further use
	// The value the caller fetched is refreshed once; after that nobody used it.
	if n.Load() != 2 {
		t.Fatalf("fetched %d times; want the first fetch plus one refresh ahead", n.Load())
	}
}

func TestCache_InvalidateAndCloseStopGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	var n atomic.Int32
	c := &Cache[int32]{Fetch: func(ctx context.Context) (int32, time.Time, error) {
		return n.Add(1), time.Now().Add(time.Hour), nil
	}}
	c.Get(context.Background())
	c.Invalidate(func(v int32) bool { return v == 99 })
	if v, _, _ := c.Get(context.Background()); v != 1 {
		t.Fatal("Invalidate dropped a value it should have kept")
	}
	c.Invalidate(func(v int32) bool { return v == 1 })
	if v, _, _ := c.Get(context.Background()); v != 2 {
		t.Fatal("Invalidate did not drop the value")
	}
	c.Close()
	if _, _, err := c.Get(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	if g := runtime.NumGoroutine(); g > before {
		t.Fatalf("goroutines: %d before, %d after Close", before, g)
	}
}

func TestCache_GetFetchedAfterSkipsOlderValuesAndFetches(t *testing.T) {
	release := make(chan struct{})
	var n atomic.Int32
	c := &Cache[int32]{Fetch: func(ctx context.Context) (int32, time.Time, error) {
		v := n.Add(1)
		if v == 2 {
			<-release // the second fetch is slow and began before the refusal
		}
		return v, time.Now().Add(time.Hour), nil
	}}
	defer c.Close()
	c.Get(context.Background()) // value 1
	c.Invalidate(nil)
	go c.Get(context.Background()) // fetch 2 starts
	for c.Stats().Fetches < 2 {
		runtime.Gosched()
	}
	refusedAt := time.Now()
	got := make(chan int32)
	go func() {
		v, _, _ := c.GetFetchedAfter(context.Background(), refusedAt)
		got <- v
	}()
	close(release)
	if v := <-got; v != 3 {
		t.Fatalf("GetFetchedAfter returned value %d, fetched before the refusal; want a new fetch (3)", v)
	}
	if v, _, _ := c.Get(context.Background()); v != 3 {
		t.Fatalf("Get after: %d", v)
	}
}
