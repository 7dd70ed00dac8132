-- Writes whose counters are not known to be applied yet, one row per write and
-- business day (see the workspace's migrations/0004_uncounted_writes.sql). The write
-- id is the version of the write's first dirty mark (never reused: AUTOINCREMENT).
CREATE TABLE analytics_uncounted (
    write_id INTEGER NOT NULL,
    day      TEXT    NOT NULL
);
CREATE INDEX analytics_uncounted_write ON analytics_uncounted (write_id);
CREATE INDEX analytics_uncounted_day ON analytics_uncounted (day);
