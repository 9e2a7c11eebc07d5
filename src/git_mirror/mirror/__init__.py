"""Mirror operations: apply, sync, flush, status, snapshots. Each returns a result object."""
