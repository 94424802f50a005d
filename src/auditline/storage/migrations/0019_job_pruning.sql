-- Finished jobs are pruned after jobs.keep_finished_days (issue #18: until now every job
-- row was kept forever, and the scheduler alone adds one an hour, the search indexer one a
-- minute). The pruner deletes per tenant, under row-level security like every other
-- statement on jobs, oldest first in bounded batches; this index finds them without a scan.
CREATE INDEX jobs_tenant_finished ON jobs (tenant_id, finished_at) WHERE finished_at IS NOT NULL;
