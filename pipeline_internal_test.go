package lakebase

import (
	"strings"
	"testing"
)

// Endpoint and instance states: ACTIVE and IDLE (and an instance's AVAILABLE or
// STARTING) connect, an IDLE one waking on connect; the rest are clear errors.
func TestTarget_StatesThatCannotConnectSayWhy(t *testing.T) {
	for _, ok := range []string{"", "ACTIVE", "IDLE", "AVAILABLE", "STARTING", "UPDATING", "FAILING_OVER"} {
		if err := (&target{endpoint: "projects/p/branches/b/endpoints/e", state: ok}).checkState(); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for state, want := range map[string]string{
		"INIT":     "ACTIVE or IDLE",
		"DEGRADED": "DEGRADED",
		"STOPPED":  "start it",
		"DELETING": "DELETING and cannot take connections",
	} {
		err := (&target{endpoint: "projects/p/branches/b/endpoints/e", state: state}).checkState()
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "projects/p/branches/b/endpoints/e") {
			t.Errorf("%s: %v", state, err)
		}
	}
}
