-- Business days that received events since they were last aggregated. Every write of
-- events upserts its days here in the same transaction, with a version from the
-- sequence; the refresh job aggregates a dirty day and deletes its row only if the
-- version is still the one it read, so events of a concurrent write are never missed.
CREATE SEQUENCE analytics_dirty_version;

CREATE TABLE analytics_dirty_days (
    day     date   PRIMARY KEY,
    version bigint NOT NULL
);
