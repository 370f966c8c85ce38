// Package usertoken is what per-user pools know of a person's token: whether it
// looks like a token at all, who it proves (the workspace's answer, cached until the
// token expires), and which of the person's tokens to mint with.
package usertoken

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"
)

// ErrUserToken is matched by the error of a person's token that the workspace
// refused (the driver re-exports it).
var ErrUserToken = errors.New("lakebase: the person's token was refused by the workspace")

// ValidChars reports whether token holds only the characters of an OAuth bearer
// token (RFC 6750's b64token, and '.' of a JWT): nothing that could end a header.
func ValidChars(token string) bool {
	for i := 0; i < len(token); i++ {
		c := token[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~+/=", c) >= 0) {
			return false
		}
	}
	return true
}

// Expiry reads the exp of a JWT access token. It is used only to know how long the
// workspace's answer about the token may be kept (the workspace checked the token
// itself); an opaque token is kept for 5 minutes.
func Expiry(token string, now time.Time) time.Time {
	parts := strings.Split(token, ".")
	if len(parts) == 3 {
		if b, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
			var c struct {
				Exp float64 `json:"exp"`
			}
			if json.Unmarshal(b, &c) == nil && c.Exp > 0 {
				return time.Unix(int64(c.Exp), 0)
			}
		}
	}
	return now.Add(5 * time.Minute)
}

// Identity is who a token proves, until when the answer is kept.
type Identity struct {
	User    string
	Expires time.Time // when the token expires
}

// Identities asks the workspace who tokens prove, one lookup per token at a time,
// and keeps the answers (by the token's digest, never the token) until the token
// expires.
type Identities struct {
	// Me asks the workspace who token belongs to (SCIM Me with the token); a
	// refusal is an error matching ErrUserToken. Its ctx is shared by every caller
	// waiting for the lookup: Me bounds it.
	Me func(ctx context.Context, token string) (string, error)
	// Max bounds the answers kept (a dropped one costs one more lookup).
	Max int
	// Stop ends every wait with Closed.
	Stop   <-chan struct{}
	Closed error

	mu      sync.Mutex
	who     map[string]Identity
	lookups singleflight.Group
}

// Identify returns who token proves: the kept answer, or the workspace's (checked
// reports that it was asked now). recheck asks even when an answer is kept. The
// wait ends with ctx (the lookup goes on for other callers) or Stop.
func (ids *Identities) Identify(ctx context.Context, token string, recheck bool) (id Identity, checked bool, err error) {
	sum := sha256.Sum256([]byte(token))
	key := string(sum[:])
	now := time.Now()
	ids.mu.Lock()
	id, ok := ids.who[key]
	ids.mu.Unlock()
	if ok && now.Before(id.Expires) && !recheck {
		return id, false, nil
	}
	exp := Expiry(token, now)
	if !now.Before(exp) {
		return Identity{}, false, fmt.Errorf("%w: it expired at %s; the person must sign in again", ErrUserToken, exp.UTC().Format(time.RFC3339))
	}
	flight := key
	if recheck {
		flight += "!"
	}
	ch := ids.lookups.DoChan(flight, func() (any, error) {
		name, err := ids.Me(context.WithoutCancel(ctx), token) // not one caller's: shared
		if err != nil {
			return nil, err
		}
		if name == "" {
			return nil, fmt.Errorf("%w: the workspace named no user for it", ErrUserToken)
		}
		return Identity{User: name, Expires: exp}, nil
	})
	var r singleflight.Result
	select {
	case r = <-ch:
	case <-ctx.Done():
		return Identity{}, false, fmt.Errorf("lakebase: finding who the person's token belongs to (SCIM Me): %w", ctx.Err())
	case <-ids.Stop:
		return Identity{}, false, ids.Closed
	}
	ids.mu.Lock()
	defer ids.mu.Unlock()
	if r.Err != nil {
		if errors.Is(r.Err, ErrUserToken) {
			delete(ids.who, key) // a token refused now is not remembered as anyone
		}
		return Identity{}, false, r.Err
	}
	id = r.Val.(Identity)
	if ids.who == nil {
		ids.who = map[string]Identity{}
	}
	for k, e := range ids.who { // keep the answers to live tokens
		if !now.Before(e.Expires) {
			delete(ids.who, k)
		}
	}
	for k := range ids.who { // and bounded
		if len(ids.who) < ids.Max {
			break
		}
		delete(ids.who, k)
	}
	ids.who[key] = id
	return id, true, nil
}

// Freshest is a person's login: the newest valid token they presented. It keeps
// the few newest, so that when the workspace refuses the newest (revoked since it
// was presented), the next mint falls back to the one before it rather than
// failing the person's requests. It is an oauth2.TokenSource.
type Freshest struct {
	mu     sync.Mutex
	tokens []*oauth2.Token // newest expiry first; at most kept
}

// kept is how many of a person's tokens are kept to fall back on.
const kept = 4

// NewFreshest starts with t.
func NewFreshest(t *oauth2.Token) *Freshest {
	return &Freshest{tokens: []*oauth2.Token{t}}
}

// Offer takes t when it outlives the current token (a tie keeps the current one);
// an older token is kept behind it to fall back on.
func (f *Freshest) Offer(t *oauth2.Token) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, have := range f.tokens {
		if have.AccessToken == t.AccessToken {
			return
		}
	}
	i := 0
	for i < len(f.tokens) && !t.Expiry.After(f.tokens[i].Expiry) {
		i++
	}
	f.tokens = append(f.tokens[:i], append([]*oauth2.Token{t}, f.tokens[i:]...)...)
	if len(f.tokens) > kept {
		f.tokens = f.tokens[:kept]
	}
}

// WouldTake reports whether Offer would make t the token minted with.
func (f *Freshest) WouldTake(t *oauth2.Token) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.tokens) == 0 || f.tokens[0].AccessToken != t.AccessToken && t.Expiry.After(f.tokens[0].Expiry)
}

// TokenRefused drops a token the workspace refused; the next Token is the one
// before it. (The connector's pipeline calls it on a 401 or 403.)
func (f *Freshest) TokenRefused(refused string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, t := range f.tokens {
		if t.AccessToken == refused {
			f.tokens = append(f.tokens[:i], f.tokens[i+1:]...)
			return
		}
	}
}

// Token returns the freshest token.
func (f *Freshest) Token() (*oauth2.Token, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.tokens) == 0 || !time.Now().Before(f.tokens[0].Expiry) {
		return nil, fmt.Errorf("%w: every token this person presented has expired or was refused; they must sign in again", ErrUserToken)
	}
	t := *f.tokens[0]
	return &t, nil
}
