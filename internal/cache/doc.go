// Package cache is the driver's refresh-ahead cache of one expiring value (a
// workspace token, a database credential): one fetch in flight, per-waiter
// contexts, refresh ahead of expiry while in use, and a still-valid value kept when
// a refresh fails.
package cache
