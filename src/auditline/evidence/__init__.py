"""Tamper evidence at work: sealing each tenant's log into signed checkpoints, answering
proofs, keeping a witness copy of every checkpoint, and verifying a live database.

The hashing, proofs and note formats are in ``integrity/`` (bytes only); this package puts
them to work over storage, for the API, the CLI and the scheduler."""
