// Package workspace is the Databricks workspace REST API as the lakebase driver
// uses it: Lakebase database credentials (Autoscaling and Provisioned), instance,
// project, branch and endpoint lookups and listings, SCIM Me, and branch and
// endpoint creation and deletion as long-running operations.
//
// A Client is built from the workspace URL, an oauth2.TokenSource and an
// *http.Client, and authenticates every call itself; when the workspace refuses the
// token (401, or 403 "Invalid access token"), Options.OnTokenRefused gives it a new
// one and the call is made once more. Calls take request values, listings follow
// every page, names are checked against the service's rules and escaped before
// they reach a path, and long-running operations come back as an Operation whose
// Wait polls with backoff and decodes the result:
//
//	c := workspace.New("https://dbc-1234.cloud.databricks.com", tokens, http.DefaultClient, workspace.Options{})
//	op, err := c.CreateBranch(ctx, workspace.CreateBranchRequest{Project: "projects/p", BranchID: "ci-1", TTL: time.Hour})
//	branch, err := op.Wait(ctx)
//
// It imports only the driver's internal HTTP plumbing: nothing of OAuth, the
// settings store, or database/sql.
package workspace
