package oauth

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// ErrReloginRequired is matched (errors.Is) by a TokenError whose refresh token or
// authorization code the identity provider refused with invalid_grant: the stored
// login is gone and a person must log in again.
var ErrReloginRequired = errors.New("oauth: the refresh token was refused; log in again")

// ErrNoToken is returned when no usable token exists and the mode forbids getting one.
var ErrNoToken = errors.New("oauth: no usable token")

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

func (e *TokenError) retryAfter() time.Duration { return e.wait }

// Error gives the endpoint's error code and description, and a hint.
func (e *TokenError) Error() string {
	msg := "oauth: " + e.Op + ": "
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

func transportFailure(status int, err error) bool {
	return status == 0 && err != nil && !errors.Is(err, ErrRedirect) && transportHint(err) == ""
}

// transportHint says what to do about a transport failure that no retry can heal
// (a mistake in the connection string, or a certificate that does not verify); ""
// for the others.
func transportHint(err error) string {
	if err == nil {
		return ""
	}
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	var rh tls.RecordHeaderError
	switch {
	case strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return "; the server speaks http, not https: write http:// in DatabricksInstance for a loopback emulator"
	case errors.As(err, &ua), errors.As(err, &he), errors.As(err, &ci):
		return "; the workspace's TLS certificate does not verify (a proxy that inspects TLS needs its CA in the system roots or SSL_CERT_FILE)"
	case errors.As(err, &rh):
		return "; the server did not answer TLS: check DatabricksInstance (http:// for a loopback emulator)"
	}
	return ""
}

// APIError is an error answer of a Databricks REST API (credential minting, lookups,
// SCIM), or a failure to reach it.
type APIError struct {
	Op         string // e.g. "mint Autoscaling credential"
	StatusCode int
	ErrorCode  string // Databricks error_code, e.g. RESOURCE_DOES_NOT_EXIST
	Message    string
	Err        error
	wait       time.Duration
}

func (e *APIError) retryAfter() time.Duration { return e.wait }

// Error gives the API's error code and message.
func (e *APIError) Error() string {
	msg := "lakebase api: " + e.Op + ": "
	switch {
	case e.ErrorCode != "" || e.Message != "":
		msg += fmt.Sprintf("%s: %s (HTTP %d)", e.ErrorCode, e.Message, e.StatusCode)
	case e.StatusCode != 0:
		msg += fmt.Sprintf("HTTP %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	case e.Err != nil:
		msg += e.Err.Error() + transportHint(e.Err)
	}
	if e.StatusCode == http.StatusForbidden {
		msg += "; the identity may lack permission on the database"
	}
	return msg
}

// Unwrap returns the transport cause.
func (e *APIError) Unwrap() error { return e.Err }

// Format prints Error for every verb.
func (e *APIError) Format(f fmt.State, _ rune) { io.WriteString(f, e.Error()) }

// Temporary reports whether retrying may help.
func (e *APIError) Temporary() bool {
	return transportFailure(e.StatusCode, e.Err) || e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
}

// temporary is implemented by errors worth retrying.
type temporary interface{ Temporary() bool }

// IsTemporary reports whether err is a transient failure worth retrying.
func IsTemporary(err error) bool {
	var t temporary
	return errors.As(err, &t) && t.Temporary()
}
