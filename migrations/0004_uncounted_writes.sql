-- Counters that are whole (SPEC §8, ARCHITECTURE "Whole counters").
--
-- Every write of events records, in its own transaction, one row per business day it
-- stored new events for: the write's counters (Redis) are not known to be applied
-- yet. The writer deletes its rows once the counters are applied. Rows that stay
-- belong to a write whose counters failed or whose process died after the commit:
-- statistics then read those days from detail, and the counter repair rebuilds them.
CREATE TABLE analytics_uncounted (
    -- Chosen by the writer (a UUID v7), so that marking takes no round trip of its own.
    write_id uuid NOT NULL,
    day      date NOT NULL
);
-- The rows of writes in flight come and go with every batch; the rows that stay are
-- few (failed writes until the next repair), so reading by day scans the table.
CREATE INDEX analytics_uncounted_write ON analytics_uncounted (write_id);

-- From before its transaction until it settled its counters, a write holds a
-- session-level shared advisory lock per day of its batch, (1634623853, days since
-- 2000-01-01); a counter rebuild of a day takes it exclusively, so it sees no write in
-- flight and holds new ones back.
CREATE FUNCTION analytics_counter_lock_key(day date) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$ SELECT (day - date '2000-01-01') $$;

-- Called first in a write's transaction, before its events: takes the shared counter
-- locks of the days (in the order given, which callers sort). They are taken before
-- the write holds any lock on the event tables, so a write that waits here blocks
-- nothing else (a counter rebuild that holds a day exclusively may itself wait for a
-- partition being created, which waits for the writes holding table locks).
CREATE FUNCTION analytics_lock_days(days date[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    d date;
BEGIN
    FOREACH d IN ARRAY days LOOP
        PERFORM pg_advisory_lock_shared(1634623853, analytics_counter_lock_key(d));
    END LOOP;
END;
$$;

-- Called inside a write's transaction once its events are in: marks the days of the
-- new events dirty and uncounted under the write's id.
CREATE FUNCTION analytics_begin_write(days date[], w uuid) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO analytics_dirty_days (day) SELECT unnest(days);
    INSERT INTO analytics_uncounted (write_id, day) SELECT w, unnest(days);
END;
$$;

-- Called after the commit, on the same connection: forgets the write's uncounted rows
-- when its counters were applied, and releases the counter locks of `locked`.
CREATE FUNCTION analytics_settle_write(w uuid, locked date[], applied boolean) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    d date;
BEGIN
    IF applied AND w IS NOT NULL THEN
        DELETE FROM analytics_uncounted WHERE write_id = w;
    END IF;
    FOREACH d IN ARRAY locked LOOP
        PERFORM pg_advisory_unlock_shared(1634623853, analytics_counter_lock_key(d));
    END LOOP;
END;
$$;
