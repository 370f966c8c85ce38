// Package ctxsync has a mutex whose Lock gives up when its caller's context ends, so
// a caller's deadline holds while another caller does slow work under the lock.
package ctxsync

import (
	"context"
	"sync"
)

// Mutex is a mutual exclusion lock whose Lock honours a context. The zero Mutex is
// unlocked and ready to use. It must not be copied after first use.
type Mutex struct {
	once sync.Once
	ch   chan struct{}
}

func (m *Mutex) init() { m.once.Do(func() { m.ch = make(chan struct{}, 1) }) }

// Lock takes the lock, or returns ctx's error if ctx ends first.
func (m *Mutex) Lock(ctx context.Context) error {
	m.init()
	select {
	case m.ch <- struct{}{}:
		return nil
	default:
	}
	select {
	case m.ch <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Unlock releases the lock.
func (m *Mutex) Unlock() {
	m.init()
	select {
	case <-m.ch:
	default:
		panic("ctxsync: unlock of an unlocked Mutex")
	}
}
