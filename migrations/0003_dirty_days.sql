-- Business days that received events since they were last aggregated. Every write of
-- events appends one row per day it touched, in the same transaction, with a version
-- from the sequence (append-only: concurrent writers never wait on each other's row).
-- A day is dirty while it has rows; its version is the highest. The refresh job
-- aggregates a dirty day and deletes its rows up to the version it read, so the rows
-- of a concurrent write survive and the day stays dirty.
CREATE SEQUENCE analytics_dirty_version;

CREATE TABLE analytics_dirty_days (
    day     date   NOT NULL,
    version bigint NOT NULL DEFAULT nextval('analytics_dirty_version')
);
CREATE INDEX analytics_dirty_days_day ON analytics_dirty_days (day, version);
