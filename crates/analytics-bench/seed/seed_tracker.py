"""The seeds' design (../shared/seeds/, "AnalyticsTracker"), as a benchmark peer.

An asyncio tracker: `await tracker.track(...)` puts the event on a bounded
`asyncio.Queue` (buffer_size 1000) without waiting on I/O; a background task flushes
every 5 seconds, or as soon as the queue holds a full batch: it inserts the batch into
PostgreSQL with asyncpg's `executemany` (idempotent on event_id) and counts it into
Redis hashes (analytics:daily:{date}, analytics:monthly:{month}, and the agent hashes)
in one pipeline. `stop()` flushes what is left.

Run by `cargo xtask bench seed-peer`, which installs asyncpg and redis with pip into
target/bench/seed-venv and passes the same events as our end-to-end benchmark (JSON
lines of envelopes). Prints one JSON object: events per second from the first track()
until stop() returned, and track() latency (median, p99) as each producer saw it.
"""

import argparse
import asyncio
import datetime
import json
import time

import asyncpg
import redis.asyncio as aioredis

BUSINESS_OFFSET = datetime.timedelta(hours=8)  # Asia/Shanghai, as the seeds assume
SUMMED = {
    "session.message": ("response_time_ms", "response_time_ms_sum"),
    "agent.session_takeover": ("wait_duration_seconds", "wait_duration_seconds_sum"),
    "agent.session_release": ("handle_duration_seconds", "handle_duration_seconds_sum"),
    "ticket.closed": ("resolution_duration_hours", "resolution_duration_hours_sum"),
}


class AnalyticsTracker:
    def __init__(self, redis, pool, prefix, buffer_size=1000, flush_interval=5.0):
        self.redis = redis
        self.pool = pool
        self.prefix = prefix
        self.buffer_size = buffer_size
        self.flush_interval = flush_interval
        self.queue = asyncio.Queue(maxsize=buffer_size)
        self._full = asyncio.Event()
        self._stopping = False
        self._task = None

    async def start(self):
        self._task = asyncio.create_task(self._run())

    async def track(self, event, properties, product=None, event_id=None, timestamp=None):
        """Buffers one event; raises asyncio.QueueFull when the buffer is full."""
        self.queue.put_nowait(
            {
                "event_id": event_id,
                "event": event,
                "product": product,
                "timestamp": timestamp,
                "properties": properties,
            }
        )
        if self.queue.qsize() >= self.buffer_size:
            self._full.set()

    async def stop(self):
        self._stopping = True
        self._full.set()
        await self._task

    async def _run(self):
        while True:
            try:
                await asyncio.wait_for(self._full.wait(), timeout=self.flush_interval)
            except asyncio.TimeoutError:
                pass
            self._full.clear()
            while not self.queue.empty():
                await self._flush()
                if not self._stopping:
                    break
            if self._stopping and self.queue.empty():
                return

    async def _flush(self):
        batch = []
        while not self.queue.empty() and len(batch) < self.buffer_size:
            batch.append(self.queue.get_nowait())
        if not batch:
            return
        rows = []
        for e in batch:
            at = datetime.datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00"))
            e["date"] = (at + BUSINESS_OFFSET).date().isoformat()
            rows.append((e["event_id"], e["event"], e["product"], json.dumps(e["properties"]), at))
        await self.pool.executemany(
            "INSERT INTO seed_analytics_events (event_id, event, product, properties, occurred_at) "
            "VALUES ($1::uuid, $2, $3, $4::jsonb, $5) ON CONFLICT (event_id) DO NOTHING",
            rows,
        )
        pipe = self.redis.pipeline(transaction=False)
        p = self.prefix
        for e in batch:
            day, month, name = e["date"], e["date"][:7], e["event"]
            pipe.hincrby(f"{p}:daily:{day}", name, 1)
            pipe.hincrby(f"{p}:monthly:{month}", name, 1)
            summed = SUMMED.get(name)
            if summed is not None:
                value = e["properties"].get(summed[0])
                if value is not None:
                    pipe.hincrbyfloat(f"{p}:daily:{day}", summed[1], value)
                    pipe.hincrbyfloat(f"{p}:monthly:{month}", summed[1], value)
            agent = e["properties"].get("agent_id")
            if agent is not None:
                pipe.hincrby(f"{p}:agent:daily:{day}", f"{agent}:{name}", 1)
                pipe.hincrby(f"{p}:agent:monthly:{month}", f"{agent}:{name}", 1)
        await pipe.execute()


async def produce(tracker, events, latencies):
    for e in events:
        while True:
            started = time.perf_counter_ns()
            try:
                await tracker.track(
                    e["event"], e.get("properties", {}), e.get("product"),
                    e.get("event_id"), e.get("timestamp"),
                )
            except asyncio.QueueFull:
                await asyncio.sleep(0.001)
                continue
            latencies.append(time.perf_counter_ns() - started)
            break


async def main():
    args = argparse.ArgumentParser()
    args.add_argument("--events", required=True)
    args.add_argument("--pg", required=True)
    args.add_argument("--redis", required=True)
    args.add_argument("--prefix", required=True)
    args.add_argument("--producers", type=int, default=8)
    a = args.parse_args()

    with open(a.events, encoding="utf-8") as f:
        events = [json.loads(line) for line in f]
    pool = await asyncpg.create_pool(a.pg, min_size=2, max_size=8)
    await pool.execute(
        "CREATE TABLE IF NOT EXISTS seed_analytics_events ("
        " event_id uuid PRIMARY KEY, event text NOT NULL, product text,"
        " properties jsonb NOT NULL, occurred_at timestamptz NOT NULL,"
        " created_at timestamptz NOT NULL DEFAULT now())"
    )
    redis = aioredis.from_url(a.redis)
    tracker = AnalyticsTracker(redis, pool, a.prefix)
    await tracker.start()

    shares = [events[i :: a.producers] for i in range(a.producers)]
    latencies = []
    started = time.perf_counter()
    await asyncio.gather(*(produce(tracker, share, latencies) for share in shares))
    await tracker.stop()
    elapsed = time.perf_counter() - started

    stored = await pool.fetchval("SELECT count(*) FROM seed_analytics_events")
    latencies.sort()
    print(
        json.dumps(
            {
                "events_per_s": len(events) / elapsed,
                "track_p50_ns": latencies[len(latencies) // 2],
                "track_p99_ns": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
                "stored": stored,
                "events": len(events),
            }
        )
    )
    await redis.aclose()
    await pool.close()


if __name__ == "__main__":
    asyncio.run(main())
