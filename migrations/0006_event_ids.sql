-- Idempotency across the retention window (SPEC §3): an id stored on any business day
-- is never stored or counted again.
--
-- A unique key on the partitioned `analytics_events` would have to include the
-- partition key, so a partition's own key only made an id unique within its day (a
-- client re-sending an id without a timestamp across midnight stored it twice).
-- Every write therefore first claims its ids here, in the same transaction as the
-- events: one `COPY` of the ids, sorted (so that two writers claiming the same ids
-- take their index locks in one order and never deadlock); when that meets a stored
-- id, the write starts again and claims with `INSERT … ON CONFLICT DO NOTHING
-- RETURNING`, storing only the events whose ids it claimed. A writer that meets an id
-- another writer has claimed but not committed waits for that commit, as with any
-- unique key. Retention deletes the ids of the partitions it drops (below).
CREATE TABLE analytics_event_ids (
    event_id uuid PRIMARY KEY
);

INSERT INTO analytics_event_ids (event_id)
SELECT event_id FROM analytics_events
ON CONFLICT DO NOTHING;

-- The partitions' own keys are redundant with the registry (only the write that
-- claimed an id stores it) and cost as much again per event: new partitions are made
-- without one, and the existing ones lose theirs.
DO $$
DECLARE
    part record;
BEGIN
    FOR part IN
        SELECT con.conname AS constraint_name, c.relname AS table_name
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_constraint con ON con.conrelid = c.oid AND con.contype = 'p'
        WHERE i.inhparent = 'analytics_events'::regclass
    LOOP
        EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', part.table_name, part.constraint_name);
    END LOOP;
END;
$$;

-- Creates the partition of one business day, [day_start, day_end), if it is missing
-- (as in 0001, without the partition's own key).
CREATE OR REPLACE FUNCTION analytics_ensure_partition(day date, day_start timestamptz, day_end timestamptz)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    name text := 'analytics_events_p' || to_char(day, 'YYYYMMDD');
BEGIN
    IF to_regclass(name) IS NOT NULL THEN
        RETURN false;
    END IF;
    PERFORM pg_advisory_xact_lock(1634623852, 1);  -- (our lock class, partitions)
    IF to_regclass(name) IS NOT NULL THEN
        RETURN false;
    END IF;
    -- Waiting on an advisory lock does not refresh the catalog caches, so the check
    -- above can miss a partition another session just created: that is not an error.
    BEGIN
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF analytics_events FOR VALUES FROM (%L) TO (%L)',
            name, day_start, day_end
        );
    EXCEPTION WHEN duplicate_table THEN
        RETURN false;
    END;
    RETURN true;
END;
$$;

-- Drops the partitions of the business days before `cutoff_day`, with their ids in
-- the registry. Returns the number of events dropped.
--
-- Each partition is locked before its ids are read: a write that stored into it
-- commits first (its ids are then deleted with the others), and no write can store
-- into it afterwards. A write of an event dated before the cutoff that is blocked on
-- the partition meanwhile may deadlock with the drop; PostgreSQL then fails one of the
-- two, and the tracker retries a deadlock at once.
CREATE OR REPLACE FUNCTION analytics_drop_partitions_before(cutoff_day date)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    part record;
    n bigint;
    dropped bigint := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(1634623852, 1);
    FOR part IN
        SELECT c.relname AS name
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'analytics_events'::regclass
          AND c.relname ~ '^analytics_events_p[0-9]{8}$'
          AND to_date(substring(c.relname from 19), 'YYYYMMDD') < cutoff_day
    LOOP
        EXECUTE format('LOCK TABLE %I IN ACCESS EXCLUSIVE MODE', part.name);
        EXECUTE format('SELECT count(*) FROM %I', part.name) INTO n;
        dropped := dropped + n;
        EXECUTE format(
            'DELETE FROM analytics_event_ids r USING %I p WHERE r.event_id = p.event_id',
            part.name
        );
        EXECUTE format('DROP TABLE %I', part.name);
    END LOOP;
    RETURN dropped;
END;
$$;
