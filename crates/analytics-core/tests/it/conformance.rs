//! The storage conformance suite on the in-memory stores.

use analytics_core::conformance as suite;
use analytics_core::memory::{MemoryCounters, MemorySpill, MemoryStore};

#[tokio::test]
async fn the_memory_store_conforms() {
    suite::event_store_keeps_each_id_once(&MemoryStore::new()).await;
    suite::event_store_summarizes_business_days(&MemoryStore::new()).await;
    suite::event_store_marks_dirty_days(&MemoryStore::new()).await;
    suite::event_store_tracks_uncounted_writes(&MemoryStore::new()).await;
    suite::event_store_keeps_dead_letters(&MemoryStore::new()).await;
    suite::event_store_answers_sessions(&MemoryStore::new()).await;
    suite::event_store_purges_before(&MemoryStore::new()).await;
    suite::stats_store_replaces_and_reads_days(&MemoryStore::new()).await;
    suite::stats_store_locks_jobs(&MemoryStore::new()).await;
}

#[tokio::test]
async fn the_memory_counters_conform() {
    suite::counter_store_counts_exactly(&MemoryCounters::new()).await;
    suite::counter_store_knows_it_is_intact(&MemoryCounters::new()).await;
    suite::counter_store_tracks_sessions_and_agents(&MemoryCounters::new()).await;
}

#[tokio::test]
async fn the_memory_spill_buffer_conforms() {
    suite::spill_buffer_round_trips(&MemorySpill::new()).await;
}
