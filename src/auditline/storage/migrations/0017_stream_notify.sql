-- Live streams (issue #20): every commit that appends to a tenant's log announces it with a
-- NOTIFY on the channel auditline_events carrying only a reference, '<tenant> <first> <last>'
-- (the seq range just appended), never the events: a payload is at most 8 KB, and the
-- listening processes read the rows themselves, once per process, by (tenant, seq).
--
-- The trigger sits on tenant_log_heads, not on events: every write path (single events,
-- group commits, COPY-staged bulk batches, access and change records written inside other
-- transactions) advances the head exactly once per statement, by the number of events it
-- numbered, so this is one notification per batch whatever its size, sent inside the writing
-- transaction (PostgreSQL delivers it only if and when that transaction commits, in commit
-- order). The head row stays locked until commit, so ranges of one tenant never interleave.
CREATE FUNCTION auditline_announce_events() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(
        'auditline_events',
        NEW.tenant_id || ' ' || OLD.next_seq::text || ' ' || (NEW.next_seq - 1)::text
    );
    RETURN NULL;
END
$$;

CREATE TRIGGER tenant_log_heads_announce
    AFTER UPDATE OF next_seq ON tenant_log_heads
    FOR EACH ROW WHEN (NEW.next_seq > OLD.next_seq)
    EXECUTE FUNCTION auditline_announce_events();
