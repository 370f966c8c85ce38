package lakebase

// Version is the driver's version (semantic versioning; see CHANGELOG.md). The
// default application_name carries it ("lakebase-go/<Version>"), so Lakebase's
// pg_stat_activity shows which client connected.
const Version = "0.1.0"
