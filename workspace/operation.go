package workspace

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// operationState is a long-running operation as the service answers it.
type operationState struct {
	Name     string          `json:"name"`
	Done     bool            `json:"done"`
	Response json.RawMessage `json:"response,omitempty"`
	Error    *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

// Operation is a long-running operation of the postgres API whose result is a T.
type Operation[T any] struct {
	c     *Client
	state operationState
	// made, when set, is the result known without the service's operation: the
	// resource that a create whose answer was lost made, as read back.
	made *T
	// until, when set, stands for the service's operation of a create whose answer
	// was lost: it reads the resource back and reports whether it is ready.
	until func(context.Context) (T, bool, error)
}

// done is an operation that ended with v, known without asking the service.
func done[T any](v T) *Operation[T] {
	return &Operation[T]{state: operationState{Done: true}, made: &v}
}

// Name is the operation's resource name ("" for one whose answer was lost and
// whose result was read back instead).
func (o *Operation[T]) Name() string { return o.state.Name }

// poll reads the resource of a create whose answer was lost back with backoff
// from delay up to 5 s until it is ready, fails, or ctx ends.
func (o *Operation[T]) poll(ctx context.Context, delay time.Duration) (T, error) {
	for {
		v, ready, err := o.until(ctx)
		if err != nil || ready {
			return v, err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			var zero T
			return zero, fmt.Errorf("waiting for the resource a create made: %w", ctx.Err())
		case <-t.C:
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// Done reports whether the operation had ended when last seen.
func (o *Operation[T]) Done() bool { return o.state.Done }

// Wait polls the operation (GET /api/2.0/postgres/<name>, as the Databricks SDK
// does, even for one that is done already) with backoff from 250 ms up to 5 s until
// it is done or ctx ends, and returns its result or its failure.
func (o *Operation[T]) Wait(ctx context.Context) (T, error) {
	var zero T
	if o.made != nil {
		return *o.made, nil
	}
	delay := 250 * time.Millisecond
	if o.until != nil {
		return o.poll(ctx, delay)
	}
	for first := true; ; first = false {
		if !first {
			if o.state.Done {
				break
			}
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return zero, fmt.Errorf("waiting for %s: %w", o.state.Name, ctx.Err())
			case <-t.C:
			}
			delay = min(delay*2, 5*time.Second)
		}
		path, err := ResourcePath(o.state.Name, "operations")
		if err != nil {
			return zero, err
		}
		if err := o.c.call(ctx, "get operation", http.MethodGet, path, nil, &o.state); err != nil {
			return zero, err
		}
	}
	if e := o.state.Error; e != nil {
		return zero, &APIError{Op: "operation " + o.state.Name, StatusCode: 200, ErrorCode: "OPERATION_FAILED", Message: e.Message}
	}
	var out T
	if len(o.state.Response) > 0 {
		if err := json.Unmarshal(o.state.Response, &out); err != nil {
			return zero, &APIError{Op: "operation " + o.state.Name, StatusCode: 200, Err: fmt.Errorf("malformed result: %w", err)}
		}
	}
	return out, nil
}
