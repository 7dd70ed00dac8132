-- The distributions kept with the daily statistics (SPEC §5 percentiles), forever:
-- per business day, per summed field, for all events (`agent_id` = '', which no agent
-- id can be) and per agent, the DDSketch bins of analytics-core's `sketch::Sketch` in
-- its stored form `zero;least;greatest;key:count,…`. Replaced with the day's
-- statistics, in the same transaction.
CREATE TABLE analytics_daily_sketches (
    day      TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    field    TEXT NOT NULL,
    bins     TEXT NOT NULL,
    PRIMARY KEY (day, agent_id, field)
);
