package oauth

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/lakebase-go/lakebase/internal/httpx"
)

// ErrReloginRequired is matched (errors.Is) by a TokenError whose refresh token or
// authorization code the identity provider refused with invalid_grant: the stored
// login is gone and a person must log in again.
var ErrReloginRequired = errors.New("lakebase: the refresh token was refused; log in again")

// ErrNoToken is returned when no usable token exists and the mode forbids getting one.
var ErrNoToken = errors.New("lakebase: no usable token")

// TokenError is an error answer of the OIDC token endpoint (RFC 6749 §5.2), or a
// failure to reach it.
type TokenError struct {
	Op          string // "client_credentials", "refresh_token", "authorization_code", "discovery", ...
	StatusCode  int    // HTTP status; 0 when the endpoint was not reached
	Code        string // the RFC 6749 error code, e.g. invalid_client, invalid_grant
	Description string
	Err         error // transport cause, if any
	wait        time.Duration
}

// RetryAfter is how long the server asked to wait before another attempt.
func (e *TokenError) RetryAfter() time.Duration { return e.wait }

// Error gives the endpoint's error code and description, and a hint.
func (e *TokenError) Error() string {
	msg := "lakebase: " + e.Op + ": "
	switch {
	case e.Code != "":
		msg += e.Code
		if e.Description != "" {
			msg += ": " + e.Description
		}
		msg += fmt.Sprintf(" (HTTP %d)", e.StatusCode)
	case e.StatusCode != 0:
		msg += fmt.Sprintf("HTTP %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	case e.Err != nil:
		msg += e.Err.Error() + transportHint(e.Err)
	}
	switch e.Code {
	case "invalid_client":
		msg += "; check OAuthClientId and OAuthClientSecret"
	case "invalid_grant":
		if e.Op == "refresh_token" {
			msg += "; the refresh token is expired, revoked or already used: log in again"
		}
	}
	return msg
}

// Unwrap returns the transport cause.
func (e *TokenError) Unwrap() error { return e.Err }

// Format prints Error for every verb: %#v would otherwise dump the endpoint's raw
// answer held by the cause.
func (e *TokenError) Format(f fmt.State, _ rune) { io.WriteString(f, e.Error()) }

// Is makes errors.Is(err, ErrReloginRequired) true for invalid_grant on a refresh.
func (e *TokenError) Is(target error) bool {
	return target == ErrReloginRequired && e.Code == "invalid_grant" && e.Op == "refresh_token"
}

// Temporary reports whether retrying may help: 5xx, 429 and transport failures
// (a refused redirect is not one).
func (e *TokenError) Temporary() bool {
	return transportFailure(e.StatusCode, e.Err) || e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
}

func transportFailure(status int, err error) bool { return httpx.TransportFailure(status, err) }

func transportHint(err error) string { return httpx.TransportHint(err) }

// IsTemporary reports whether err is a transient failure worth retrying.
func IsTemporary(err error) bool { return httpx.IsTemporary(err) }
