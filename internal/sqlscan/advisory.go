package sqlscan

import "strings"

// SessionAdvisoryLock returns the name of the first session-level advisory lock
// function the statement calls (pg_advisory_lock, pg_try_advisory_lock, their
// _shared forms and the unlocks; not the pg_advisory_xact_* ones), or "" for none.
// Only calls count: a name in a literal, a comment, a quoted alias or a column is
// not one. SQL built inside the server (EXECUTE in PL/pgSQL, a function that takes
// the lock) is out of its reach.
func SessionAdvisoryLock(sql string) string {
	// Every such call is written with "advisory" in it, in some case, or hidden in
	// a U&"..." name: anything else is let through without a scan.
	if !containsFoldASCII(sql, "advisory") && strings.IndexByte(sql, '&') < 0 {
		return ""
	}
	var name string
	EachCall(sql, func(call Call) bool {
		if isSessionAdvisoryLock(call.Name) {
			name = call.Name
			return false
		}
		return true
	})
	return name
}

// isSessionAdvisoryLock reports whether a function of that name (as PostgreSQL
// resolves it) takes or releases a session-level advisory lock: pg_advisory_* and
// pg_try_advisory_*, but for the transaction-level pg_advisory_xact_* and
// pg_try_advisory_xact_*, which work through the pooler.
func isSessionAdvisoryLock(name string) bool {
	for _, prefix := range []string{"pg_advisory_", "pg_try_advisory_"} {
		if rest, ok := strings.CutPrefix(name, prefix); ok {
			return !strings.HasPrefix(rest, "xact_")
		}
	}
	return false
}

// containsFoldASCII reports whether s contains the lower-case ASCII word sub, in
// any case, without allocating.
func containsFoldASCII(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		j := 0
		for ; j < len(sub); j++ {
			b := s[i+j]
			if 'A' <= b && b <= 'Z' {
				b += 'a' - 'A'
			}
			if b != sub[j] {
				break
			}
		}
		if j == len(sub) {
			return true
		}
	}
	return false
}
