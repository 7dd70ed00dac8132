-- Events the store refused for a reason that retrying cannot fix (their data): the
-- tracker splits a refused batch until the refused events are isolated, keeps them
-- here with the reason, and stores the rest. They are never counted;
-- `analytics dead-letters` lists them. The envelope is JSON as text (`jsonb` would
-- refuse some of what made them fail).
CREATE TABLE analytics_dead_letters (
    -- Kept once per id, like events.
    event_id         uuid        PRIMARY KEY,
    event            text        NOT NULL,
    dead_lettered_at timestamptz NOT NULL,
    reason           text        NOT NULL,
    envelope         text        NOT NULL
);
CREATE INDEX analytics_dead_letters_at ON analytics_dead_letters (dead_lettered_at);
