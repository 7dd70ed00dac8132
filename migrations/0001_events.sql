-- Event detail (SPEC §7): kept for the retention window, range-partitioned by day so
-- that retention drops whole partitions instead of deleting rows.

CREATE TABLE analytics_events (
    event_id     uuid        NOT NULL,
    occurred_at  timestamptz NOT NULL,
    event        text        NOT NULL,
    product      text,
    session_id   text,
    agent_id     text,
    ticket_id    text,
    -- The event's summed quantity in millionths of its unit (response time, wait,
    -- handle or resolution duration), as analytics-core computes it; null otherwise.
    value_micros bigint,
    -- `sla_met` of ticket.closed; null otherwise.
    sla_met      boolean,
    properties   jsonb       NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (occurred_at);

-- Idempotency: every partition has event_id as its primary key (a key on the parent
-- would have to include occurred_at), and inserts skip stored ids. An id is therefore unique within the business day its event is dated: a
-- re-sent event that carries its timestamp, as every retry of the tracker does, is
-- always recognized. Dropping a partition drops its ids with it.
--
-- No other index: partitions are business days, so aggregating a day reads exactly
-- one partition, and every statistic is read from the daily tables.

-- Creates the partition of one business day, [day_start, day_end), with its primary
-- key on event_id, if it is missing.
-- The bounds come from the service, which knows the business time zone. Safe to call
-- from several processes at once: creation is serialized by an advisory lock.
CREATE FUNCTION analytics_ensure_partition(day date, day_start timestamptz, day_end timestamptz)
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
        EXECUTE format('ALTER TABLE %I ADD PRIMARY KEY (event_id)', name);
    EXCEPTION WHEN duplicate_table THEN
        RETURN false;
    END;
    RETURN true;
END;
$$;

-- Drops the partitions of the business days before `cutoff_day`. Returns the number
-- of events dropped.
CREATE FUNCTION analytics_drop_partitions_before(cutoff_day date)
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
        EXECUTE format('SELECT count(*) FROM %I', part.name) INTO n;
        dropped := dropped + n;
        EXECUTE format('DROP TABLE %I', part.name);
    END LOOP;
    RETURN dropped;
END;
$$;

-- Settings the database was set up with, such as the business time zone that
-- partition bounds and daily statistics follow.
CREATE TABLE analytics_settings (
    key   text PRIMARY KEY,
    value text NOT NULL
);
