-- The distributions kept with the daily statistics (SPEC §5 percentiles), forever:
-- per business day, per summed field (`response_time_ms_sum`, …), for all events
-- (`agent_id` = '', which no agent id can be) and per agent, the DDSketch bins of
-- analytics-core's `sketch::Sketch` in its stored form
-- `zero;least;greatest;key:count,…`. Replaced with the day's statistics, in the same
-- transaction.
CREATE TABLE analytics_daily_sketches (
    day        date        NOT NULL,
    agent_id   text        NOT NULL,
    field      text        NOT NULL,
    bins       text        NOT NULL,
    PRIMARY KEY (day, agent_id, field)
);
