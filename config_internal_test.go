package lakebase

import (
	"errors"
	"strings"
	"testing"
)

// On the pooled host only calls of the session-level advisory lock functions are
// refused: not their names in literals, comments, quoted aliases or columns, and
// not the transaction-level locks; a call is found however its name is written.
func TestPooledSQL_RefusesOnlyCallsOfSessionAdvisoryLockFunctions(t *testing.T) {
	refused := []string{
		"SELECT pg_advisory_lock(7)",
		"select PG_TRY_ADVISORY_LOCK(7)",
		"SELECT pg_advisory_lock_shared($1)",
		"SELECT pg_try_advisory_lock_shared(1)",
		"SELECT pg_advisory_unlock(7)",
		"SELECT pg_advisory_unlock_shared(7)",
		"SELECT pg_advisory_unlock_all()",
		"SELECT pg_catalog.pg_advisory_lock(7)",
		`SELECT "pg_catalog"."pg_advisory_lock"(7)`,
		`SELECT "pg_advisory_lock"(7)`,
		`SELECT U&"pg_\0061dvisory_lock"(1)`,
		`SELECT U&"pg_\+000061dvisory_lock"(1)`,
		`SELECT U&"pg_!0061dvisory_lock" UESCAPE '!' (1)`,
		"SELECT pg_advisory_lock /* hidden */ (7)",
		"SELECT 'advisory_lock', pg_advisory_lock(7)",
		`SELECT 'a\', pg_advisory_lock(7) --'`,
		"SELECT 1; SELECT pg_advisory_lock(7)",
		"SELECT * FROM pg_try_advisory_lock(7)",
	}
	allowed := []string{
		"SELECT 'advisory_lock'",
		"SELECT 'pg_advisory_lock(7)'",
		`SELECT E'\' pg_advisory_lock(7)'`,
		"SELECT $$pg_advisory_lock(7)$$",
		"SELECT $q$ pg_advisory_lock(7) $q$",
		"SELECT 1 -- takes pg_advisory_lock(7)",
		"SELECT 1 /* takes pg_advisory_lock(7) */",
		"SELECT 1 /* nested /* */ pg_advisory_lock(7) */",
		`SELECT count(*) AS "Advisory_Locks_Count" FROM t`,
		"SELECT advisory_lock_id FROM locks WHERE advisory_lock_id = $1",
		`SELECT "PG_ADVISORY_LOCK"(7)`, // quoted: another (user) function
		"SELECT pg_advisory_xact_lock(7)",
		"SELECT pg_try_advisory_xact_lock(7)",
		"SELECT pg_advisory_xact_lock_shared(7)",
		"SELECT pg_catalog.pg_try_advisory_xact_lock_shared(7)",
		"SELECT a & b FROM t",
		`SELECT U&"d\0061ta" FROM t`,
	}
	pooled := &Config{Pooled: true}
	for _, q := range refused {
		err := pooled.checkPooledSQL(q)
		if !errors.Is(err, ErrPooledSessionLock) || !strings.Contains(err.Error(), `"pg_`) || !strings.Contains(err.Error(), "Pooled=false") {
			t.Errorf("%s: %v, want ErrPooledSessionLock naming the function", q, err)
		}
		if err := (&Config{}).checkPooledSQL(q); err != nil {
			t.Errorf("%s on the direct host: %v", q, err)
		}
	}
	for _, q := range allowed {
		if err := pooled.checkPooledSQL(q); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
}
