-- The embedded store's schema: the PostgreSQL tables of the workspace's migrations/,
-- in SQLite's dialect. Instants are microseconds since the Unix epoch (exact and
-- ordered); dates are YYYY-MM-DD text.

CREATE TABLE analytics_events (
    event_id     TEXT    PRIMARY KEY,
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
CREATE INDEX analytics_events_occurred_at ON analytics_events (occurred_at);

CREATE TABLE analytics_daily_stats (
    day   TEXT    NOT NULL,
    field TEXT    NOT NULL,
    value INTEGER NOT NULL CHECK (value >= 0),
    PRIMARY KEY (day, field)
);

CREATE TABLE analytics_agent_daily_stats (
    day      TEXT    NOT NULL,
    agent_id TEXT    NOT NULL,
    field    TEXT    NOT NULL,
    value    INTEGER NOT NULL CHECK (value >= 0),
    PRIMARY KEY (day, agent_id, field)
);

-- Days written since they were last aggregated; append-only, the version is the row id.
CREATE TABLE analytics_dirty_days (
    version INTEGER PRIMARY KEY AUTOINCREMENT,
    day     TEXT    NOT NULL
);
CREATE INDEX analytics_dirty_days_day ON analytics_dirty_days (day, version);

CREATE TABLE analytics_settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
