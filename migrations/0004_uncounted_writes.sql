-- Counters that are whole (SPEC §8, ARCHITECTURE "Whole counters").
--
-- Every write of events records, in its own transaction, one row per business day it
-- stored new events for: the write's counters (Redis) are not known to be applied
-- yet. The writer deletes its rows once the counters are applied. Rows that stay
-- belong to a write whose counters failed or whose process died after the commit:
-- statistics then read those days from detail, and the counter repair rebuilds them.
CREATE SEQUENCE analytics_write_id;

CREATE TABLE analytics_uncounted (
    write_id   bigint      NOT NULL,
    day        date        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX analytics_uncounted_write ON analytics_uncounted (write_id);
CREATE INDEX analytics_uncounted_day ON analytics_uncounted (day);

-- Between its commit and settling its counters, a write holds a session-level shared
-- advisory lock per day, (1634623853, days since 2000-01-01); a counter rebuild of a
-- day takes it exclusively, so it sees no write in flight and holds new ones back.
CREATE FUNCTION analytics_counter_lock_key(day date) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$ SELECT (day - date '2000-01-01') $$;

-- Called inside a write's transaction once its events are in: takes the counter locks
-- of the days (in the order given, which callers sort), marks them dirty and uncounted.
-- Returns the write id.
CREATE FUNCTION analytics_begin_write(days date[]) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    w bigint := nextval('analytics_write_id');
    d date;
BEGIN
    FOREACH d IN ARRAY days LOOP
        PERFORM pg_advisory_lock_shared(1634623853, analytics_counter_lock_key(d));
    END LOOP;
    INSERT INTO analytics_dirty_days (day) SELECT unnest(days);
    INSERT INTO analytics_uncounted (write_id, day) SELECT w, unnest(days);
    RETURN w;
END;
$$;

-- Called after the commit, on the same connection: forgets the write's uncounted rows
-- when its counters were applied, and releases its counter locks.
CREATE FUNCTION analytics_settle_write(w bigint, days date[], applied boolean) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    d date;
BEGIN
    IF applied THEN
        DELETE FROM analytics_uncounted WHERE write_id = w;
    END IF;
    FOREACH d IN ARRAY days LOOP
        PERFORM pg_advisory_unlock_shared(1634623853, analytics_counter_lock_key(d));
    END LOOP;
END;
$$;
