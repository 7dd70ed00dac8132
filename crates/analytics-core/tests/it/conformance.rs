//! The storage conformance suite on the in-memory stores.

use analytics_core::conformance as suite;
use analytics_core::memory::{MemoryCounters, MemorySpill, MemoryStore};

#[tokio::test]
async fn the_memory_store_conforms() {
    suite::event_store_conforms(async || MemoryStore::new(), |store| store).await;
    suite::stats_store_conforms(async || MemoryStore::new(), |store| store).await;
}

#[tokio::test]
async fn the_memory_counters_conform() {
    suite::counter_store_conforms(async || MemoryCounters::new(), |store| store).await;
}

#[tokio::test]
async fn the_memory_spill_buffer_conforms() {
    suite::spill_buffer_round_trips(&MemorySpill::new()).await;
}
