package settings

import (
	"context"
	"errors"
	"sync"
)

// WithMemoryFallback returns st, except that once st's file cannot be written (a
// read-only file system, say) everything is kept in a private memory store from
// then on, and onFallback is told once why. A keyring asked for is never swapped
// silently: ErrNoKeyring is returned as is. Exclusive locks st itself (Unwrap).
func WithMemoryFallback(st Store, onFallback func(*SettingsFileError)) Store {
	return &fallbackStore{Store: st, onFallback: onFallback}
}

type fallbackStore struct {
	Store
	onFallback func(*SettingsFileError)
	once       sync.Once
	mu         sync.Mutex
	mem        Store
}

// Unwrap returns the store it falls back from (Exclusive locks that one).
func (f *fallbackStore) Unwrap() Store { return f.Store }

func (f *fallbackStore) Update(ctx context.Context, fn func(*Settings) (bool, error)) error {
	f.mu.Lock()
	mem := f.mem
	f.mu.Unlock()
	if mem != nil {
		return mem.Update(ctx, fn)
	}
	err := f.Store.Update(ctx, fn)
	var se *SettingsFileError
	if !errors.As(err, &se) || !se.Unwritable || errors.Is(err, ErrNoKeyring) {
		return err
	}
	f.once.Do(func() {
		if f.onFallback != nil {
			f.onFallback(se)
		}
		f.mu.Lock()
		f.mem = NewPrivateMemoryStore()
		f.mu.Unlock()
	})
	f.mu.Lock()
	mem = f.mem
	f.mu.Unlock()
	return mem.Update(ctx, fn)
}
