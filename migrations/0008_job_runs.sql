-- When the scheduled jobs last started, across every instance on this database
-- (`StatsStore::claim_run`): an instance whose tick comes less than most of an interval
-- after another's start skips its run, so several instances run the jobs about once
-- per interval between them.
CREATE TABLE analytics_job_runs (
    jobs       text        PRIMARY KEY,
    started_at timestamptz NOT NULL
);
