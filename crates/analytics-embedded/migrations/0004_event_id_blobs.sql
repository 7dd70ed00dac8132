-- Event ids as their 16 bytes instead of 36 characters of text: a smaller key and
-- faster comparisons for the primary key every insert checks (BENCHMARKS.md,
-- "embedded-ingest"). Rows keep everything else; existing ids are converted.
CREATE TABLE analytics_events_blob_ids (
    event_id     BLOB    PRIMARY KEY,
    occurred_at  INTEGER NOT NULL,
    event        TEXT    NOT NULL,
    product      TEXT,
    session_id   TEXT,
    agent_id     TEXT,
    ticket_id    TEXT,
    value_micros INTEGER,
    sla_met      INTEGER,
    properties   TEXT    NOT NULL,
    received_at  INTEGER NOT NULL
);
INSERT INTO analytics_events_blob_ids
SELECT unhex(replace(event_id, '-', '')), occurred_at, event, product, session_id,
       agent_id, ticket_id, value_micros, sla_met, properties, received_at
FROM analytics_events;
DROP TABLE analytics_events;
ALTER TABLE analytics_events_blob_ids RENAME TO analytics_events;
CREATE INDEX analytics_events_occurred_at ON analytics_events (occurred_at);
