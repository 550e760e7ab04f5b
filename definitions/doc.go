// Package definitions keeps every version of every workflow definition.
//
// # Where it sits
//
//	stepwise apply -f FILE ──► definitions (compacted topic) ──► processors, API
//
// `stepwise apply` (and `run -f` / `dev -f` at start) turns definition files
// into one Record per workflow (Sources), gives each a version one above
// the newest the topic holds unless its content hash equals that newest
// version's, and publishes them (Publish). Processors and the API read the
// topic from its start and then follow it (Follower) into a Catalog, which
// answers "workflow W at version N" for the state machine and "the current
// version of W" for new starts.
//
// # Records
//
// Key: "<workflow>/<version>" (KeyOf), so the compacted topic keeps every
// version: a running request is pinned to the version it started under and
// must find it for as long as it runs. Value: Record as JSON with a "v"
// field (RecordVersion). A deletion is a version of its own with Deleted
// set and no source: new starts are refused, requests pinned to earlier
// versions run to the end. Applying the workflow again makes the next
// version.
//
// # One writer at a time
//
// Every publisher uses the same transactional id (TransactionalID) and
// reads the topic's end only after its producer is initialised, which
// fences any other publisher's open transaction. Two concurrent applies can
// therefore never both commit the same version number.
package definitions
