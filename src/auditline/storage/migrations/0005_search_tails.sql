-- The slowest searches and statistics of the 10 M benchmark spent their time fetching pages
-- they did not need (the mix runs after a restart with the OS cache dropped, so every page
-- not read before is a disk read). Each change below cuts the pages one kind of query
-- touches; none changes an answer. Measurements: docs/benchmarks/search.md.

-- 1. A time-only BRIN index, so the full-text route can AND the GIN bitmap with the time
-- range.
--
-- The GIN index (tenant_id, search_vector) knows nothing of time, so a rare word searched
-- in the last 24 hours visited every heap page holding one of the month's matches to keep
-- one day's worth (bench-001, "workspace": 2,987 pages for 70 rows). PostgreSQL will not
-- BitmapAnd the GIN bitmap with the primary key (tenant_id, timestamp, id), because both
-- carry the tenant condition; it does AND it with an index on the timestamp alone. A
-- BRIN index is enough for that (rows are stored roughly in time order: ingest appends
-- them, and the seeder writes each tenant in time order) and costs next to nothing: 38
-- pages per monthly partition at 10 M events, a summary update per 128 heap pages
-- written (autosummarize). Measured: 104 heap pages instead of 2,987 for the case above.
CREATE INDEX events_time_brin ON events USING brin (timestamp)
    WITH (pages_per_range = 128, autosummarize = on);

-- 2. The text-index route searches from the end the order starts at in windows sized
-- from the matches already found, instead of whole months.
--
-- With the BRIN index, a window costs the heap pages of its own matches. The first window
-- is the last day (the first day, ascending); each next one is twice as wide as the
-- density seen so far says the rest of `lim` needs, or eight times the span covered when
-- nothing matched yet. A word seen every day is answered from its last day instead of its
-- last month (bench-000, "webhook": 1,816 pages before); a word absent from the range
-- still costs a handful of windows, each a GIN lookup of a few milliseconds. Everything
-- else is as in migration 0003 (same signature, same guarantees).
CREATE OR REPLACE FUNCTION auditline_text_matches(q tsquery, lo timestamptz, hi timestamptz,
                                                  below_seq bigint, after_ts timestamptz,
                                                  after_id uuid, descending boolean,
                                                  lim integer)
RETURNS TABLE (ts timestamptz, id uuid)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public
SET TimeZone = 'UTC'
-- The caller already walked the time index (see storage/search.py); here the GIN index
-- is the point, so plain index scans are off and the planner picks a bitmap scan (ANDed
-- with the BRIN index when the window is narrow).
SET enable_indexscan = off
ROWS 500
AS $$
DECLARE
    tenant text := public.auditline_current_tenant();
    statement text := 'SELECT e.timestamp, e.id FROM public.events e
                        WHERE e.tenant_id = $8 AND e.search_vector @@ $1
                          AND e.timestamp >= $2 AND e.timestamp < $3 AND e.seq < $4';
    first_ts timestamptz;
    last_ts timestamptz;
    w_lo timestamptz;
    w_hi timestamptz;
    covered interval;
    remaining integer := lim;
    got integer;
BEGIN
    IF tenant IS NULL THEN
        RETURN;
    END IF;
    IF after_ts IS NOT NULL THEN
        statement := statement || CASE WHEN descending
                                       THEN ' AND (e.timestamp, e.id) < ($5, $6)'
                                       ELSE ' AND (e.timestamp, e.id) > ($5, $6)' END;
    END IF;
    -- EXECUTE plans with the actual values (partition pruning, the tsquery's selectivity,
    -- the window's width) instead of a generic cached plan.
    IF lim IS NULL THEN
        RETURN QUERY EXECUTE statement
            USING q, lo, hi, below_seq, after_ts, after_id, lim, tenant;
        RETURN;
    END IF;
    statement := statement || CASE WHEN descending
                                   THEN ' ORDER BY e.timestamp DESC, e.id DESC'
                                   ELSE ' ORDER BY e.timestamp, e.id' END || ' LIMIT $7';
    PERFORM set_config('enable_indexscan', 'on', true);  -- min/max from the primary key
    SELECT min(e.timestamp), max(e.timestamp) INTO first_ts, last_ts
      FROM public.events e
     WHERE e.tenant_id = tenant AND e.timestamp >= lo AND e.timestamp < hi;
    PERFORM set_config('enable_indexscan', 'off', true);
    IF first_ts IS NULL THEN
        RETURN;
    END IF;
    IF descending THEN
        w_hi := hi;
        w_lo := greatest(lo, last_ts - interval '1 day');
    ELSE
        w_lo := lo;
        w_hi := least(hi, first_ts + interval '1 day');
    END IF;
    LOOP
        RETURN QUERY EXECUTE statement
            USING q, w_lo, w_hi, below_seq, after_ts, after_id, remaining, tenant;
        GET DIAGNOSTICS got = ROW_COUNT;
        remaining := remaining - got;
        EXIT WHEN remaining <= 0;
        -- The windows tile [lo, hi) without overlap: the next one starts where this ended.
        IF descending THEN
            EXIT WHEN w_lo <= first_ts;
            covered := last_ts - w_lo;
        ELSE
            EXIT WHEN w_hi > last_ts;
            covered := w_hi - first_ts;
        END IF;
        covered := CASE WHEN remaining < lim
                        THEN covered * (2.0 * remaining / (lim - remaining))::float8
                        ELSE covered * 8 END;
        IF descending THEN
            w_hi := w_lo;
            w_lo := greatest(lo, w_hi - greatest(covered, interval '1 second'));
        ELSE
            w_lo := w_hi;
            w_hi := least(hi, w_lo + greatest(covered, interval '1 second'));
        END IF;
    END LOOP;
END;
$$;
REVOKE ALL ON FUNCTION auditline_text_matches(tsquery, timestamptz, timestamptz, bigint,
                                              timestamptz, uuid, boolean, integer)
    FROM PUBLIC;

-- 3. Rollup counts in their primary keys, so statistics read the rollups with index-only
-- scans.
--
-- A tenant's rollup rows for a week are contiguous in the primary key but scattered over
-- the heap: 7-day stats of a tenant with 36 k events a week fetched 46 k heap pages (one
-- per (hour, resource) row), 10.7 k for the largest tenant. With `n` in the key's leaf
-- tuples those reads become index-only: 521 and 3,845 pages (after VACUUM; rows updated
-- since the last vacuum are still checked in the heap). On the write side a changed `n`
-- now always needs a new index tuple; on the seeded 10 M database 90 % of the upsert's
-- updates were already non-HOT (full rollup pages), so this adds little.
ALTER TABLE event_rollups
    DROP CONSTRAINT event_rollups_pkey,
    ADD PRIMARY KEY (tenant_id, dim, bucket, k1, k2) INCLUDE (n);
ALTER TABLE event_rollup_heavy
    DROP CONSTRAINT event_rollup_heavy_pkey,
    ADD PRIMARY KEY (tenant_id, dim, bucket, k1, k2) INCLUDE (n);
