"""The data lifecycle of a tenant's log: retention and cleanup, archival to cold storage,
backup and recovery. Services here are used by the API, the CLI and worker tasks alike."""
