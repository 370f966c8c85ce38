// Package storedproc reads the EXEC statements of the virtual stored procedures that
// the lakebase driver answers itself, binds their inputs, and builds their result rows.
//
// The grammar, case-insensitive:
//
//	{EXEC | EXECUTE} <name> [ [@]<input> = <value> [, ...] ] [;]
//
// where a value is a single-quoted string (a quote inside it is doubled), a number, NULL, a
// positional parameter ? or $n, or @name bound by sql.Named. Leading whitespace and
// SQL comments are skipped. Only the procedures in the table are intercepted:
// anything else, including Postgres' own EXECUTE plan(...) and CALL, is left alone.
//
// The package knows nothing of OAuth; the driver supplies the behaviour. It must not
// import the driver or any of its other packages.
package storedproc
