"""Background work: periodic upkeep today; the queue, worker, scheduler and lifecycle tasks
(indexing, checkpoints, archival, retention, backups) as they land."""
