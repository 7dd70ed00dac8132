-- Events the store refused for good (see the workspace's migrations/0005_dead_letters.sql).
CREATE TABLE analytics_dead_letters (
    event_id         TEXT    PRIMARY KEY,
    event            TEXT    NOT NULL,
    dead_lettered_at INTEGER NOT NULL,
    reason           TEXT    NOT NULL,
    envelope         TEXT    NOT NULL
);
CREATE INDEX analytics_dead_letters_at ON analytics_dead_letters (dead_lettered_at);
