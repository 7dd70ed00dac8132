//! The binaries' allocator, mimalloc, and the one call into it that Rust's allocator
//! interface does not offer.
//!
//! mimalloc keeps each block in a page of the thread that allocated it. A block freed by
//! another thread (an event built by a request handler, freed by a tracker writer once
//! stored) waits in a list of its page that the owning thread processes only when it
//! allocates again, so a worker thread that goes idle after a burst keeps those pages
//! and the resident set stays near its peak (82–89 MiB against 21 MiB at start on the
//! embedded store; BENCHMARKS.md, `memory`). [`runtime`] installs [`collect_on_park`]
//! as the runtime's `on_thread_park` hook: a worker that runs out of work processes
//! those lists and returns its empty pages, and the memory goes back within a second of
//! the burst. A worker that parks has nothing else to do: HTTP ingest and end to end
//! measured within noise with it.
#![allow(unsafe_code)]

/// The global allocator of the `analytics` binary and of the benchmarks.
pub use mimalloc::MiMalloc as Allocator;

/// Has mimalloc take back what other threads freed in this thread's pages, and return
/// pages left empty.
pub fn collect_on_park() {
    // SAFETY: `mi_collect` takes no pointer: it walks the calling thread's own heap
    // (and the arenas, under mimalloc's own locks) and may be called at any time from
    // any thread, whatever the global allocator is.
    unsafe { libmimalloc_sys::mi_collect(false) }
}

/// Has mimalloc take back everything this thread's heap can give, as it stops.
pub fn collect_on_exit() {
    // SAFETY: as in `collect_on_park`; `force` also frees what the heap keeps cached.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

/// The multi-threaded runtime of the binaries (as `#[tokio::main]` builds it), with
/// [`collect_on_park`] on every worker that parks. Threads that blocked in place (the
/// embedded store's writes) leave the pool after half a second idle (not 10 s),
/// collecting everything they hold as they go: their pages would otherwise stay with
/// a sleeping thread.
///
/// # Errors
///
/// When the runtime cannot be built (no threads, no timer).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(collect_on_park)
        .thread_keep_alive(std::time::Duration::from_millis(500))
        .on_thread_stop(collect_on_exit)
        .build()
}
