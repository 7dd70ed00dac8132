-- Daily statistics (SPEC §7), kept forever: per business day, every field of the
-- metric model of analytics-core (`Field::name`: counts per event, `custom`, duration
-- sums in millionths, `sla_met`). Only non-zero fields have rows.
CREATE TABLE analytics_daily_stats (
    day        date        NOT NULL,
    field      text        NOT NULL,
    value      bigint      NOT NULL CHECK (value >= 0),
    PRIMARY KEY (day, field)
);

-- The same per agent, for the events that name an agent.
CREATE TABLE analytics_agent_daily_stats (
    day        date        NOT NULL,
    agent_id   text        NOT NULL,
    field      text        NOT NULL,
    value      bigint      NOT NULL CHECK (value >= 0),
    PRIMARY KEY (day, agent_id, field)
);

-- When each day was last aggregated from event detail.
CREATE TABLE analytics_aggregated_days (
    day           date        PRIMARY KEY,
    aggregated_at timestamptz NOT NULL DEFAULT now(),
    events        bigint      NOT NULL
);
