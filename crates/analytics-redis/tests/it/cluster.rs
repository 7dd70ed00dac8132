//! The store on a private three-master Redis Cluster: the conformance suite, keys
//! spread over the masters with each flush's transactions kept within one slot, and a
//! master that restarts empty taking only its own days out of the whole counters.

use std::collections::BTreeSet;

use analytics_core::conformance as suite;
use analytics_core::counters::{Bucket, CounterBatch, Period};
use analytics_core::event::Event;
use analytics_core::store::{CounterStore, SpillBuffer};
use analytics_core::testing::event;
use analytics_core::time::Calendar;
use analytics_redis::RedisOptions;
use analytics_redis::testing::TestCluster;
use chrono::{TimeDelta, Utc};
use serde_json::json;

/// Events on each UTC day from two days ago to tomorrow, noon (the same day in
/// Shanghai, the default calendar), with sessions and
/// agents.
fn recent_events() -> Vec<Event> {
    let noon = Utc::now()
        .date_naive()
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_utc();
    (-2..=1)
        .flat_map(|offset| {
            let t = noon + TimeDelta::days(offset);
            vec![
                event(
                    "session.start",
                    t,
                    json!({"session_id": format!("s{offset}")}),
                ),
                event("agent.login", t, json!({"agent_id": format!("a{offset}")})),
                event(
                    "agent.session_release",
                    t,
                    json!({"agent_id": "a", "session_id": "s", "handle_duration_seconds": 30.5}),
                ),
            ]
        })
        .collect()
}

#[tokio::test]
async fn the_store_conforms_on_a_redis_cluster() {
    let cluster = TestCluster::start(3);
    let options = RedisOptions::default;
    suite::counter_store_conforms(async || cluster.store(options()).await, |store| store).await;
    suite::spill_buffer_round_trips(&cluster.store(options()).await).await;

    // One flush touches several groups, which live on several masters.
    let store = cluster.store(options()).await;
    let calendar = Calendar::default();
    store
        .apply(&CounterBatch::from_events(&calendar, &recent_events()))
        .await
        .unwrap();
    let keys = cluster.keys(store.keys().prefix());
    let nodes: BTreeSet<usize> = keys.iter().map(|key| cluster.node_of(key)).collect();
    assert!(nodes.len() > 1, "keys on one master only: {keys:?}");
    // A flush with more sessions than one command names (a script's arguments are
    // bounded on a cluster).
    let now = Utc::now();
    let before = store
        .active_sessions(now - TimeDelta::minutes(1))
        .await
        .unwrap();
    let starts: Vec<Event> = (0..5_000)
        .map(|i| {
            event(
                "session.start",
                now,
                json!({"session_id": format!("big-{i}")}),
            )
        })
        .collect();
    store
        .apply(&CounterBatch::from_events(&calendar, &starts))
        .await
        .unwrap();
    assert_eq!(
        store
            .active_sessions(now - TimeDelta::minutes(1))
            .await
            .unwrap(),
        before + 5_000
    );
    let today_key = format!("daily:{{{}}}", Utc::now().date_naive());
    assert!(
        keys.iter().any(|key| key.ends_with(&today_key)),
        "hash-tagged day keys: {keys:?}"
    );
}

#[tokio::test]
async fn a_master_that_restarts_empty_takes_out_only_its_own_days() {
    let mut cluster = TestCluster::start(3);
    let store = cluster.store(RedisOptions::default()).await;
    let calendar = Calendar::default();
    let batch = CounterBatch::from_events(&calendar, &recent_events());
    store.apply(&batch).await.unwrap();
    assert!(!store.intact().await.unwrap(), "never rebuilt");
    let token = store.begin_rebuild().await.unwrap();
    assert!(store.finish_rebuild(&token).await.unwrap());
    assert!(store.intact().await.unwrap());

    let today = Utc::now().date_naive();
    let days: Vec<Period> = (-2..=1)
        .map(|offset| Period::Day(today + TimeDelta::days(offset)))
        .collect();
    let buckets: Vec<Bucket> = days.iter().map(|day| Bucket::all(*day)).collect();
    let counted = store.read(&buckets).await.unwrap();
    assert!(
        counted.iter().all(|sums| sums.total_events() == 3),
        "{counted:?}"
    );
    assert_eq!(
        store.read_whole(&buckets).await.unwrap(),
        Some(counted.clone())
    );

    // The master of today's slot crashes and comes back empty.
    let node_of = |cluster: &TestCluster, day: &Period| {
        cluster.node_of(&store.keys().bucket(&Bucket::all(*day)).0)
    };
    let restarted = node_of(&cluster, &days[2]);
    cluster.restart(restarted);
    assert!(!store.intact().await.unwrap(), "a lost group: not intact");
    for (i, day) in days.iter().enumerate() {
        let read = store.read_whole(&[Bucket::all(*day)]).await.unwrap();
        let agents = store.read_agents_whole(*day).await.unwrap();
        if node_of(&cluster, day) == restarted {
            assert_eq!(read, None, "{day:?} lost with its master");
            assert_eq!(agents, None, "{day:?} agents lost with its master");
        } else {
            assert_eq!(read, Some(vec![counted[i]]), "{day:?} on another master");
            assert!(agents.is_some());
        }
    }
    assert_eq!(
        store.read_whole(&buckets).await.unwrap(),
        None,
        "one lost day: not whole"
    );

    // A rebuild (here: the counters replaced by what was counted) makes them whole.
    let token = store.begin_rebuild().await.unwrap();
    for (bucket, sums) in buckets.iter().zip(&counted) {
        store.replace(bucket, sums).await.unwrap();
    }
    assert!(store.finish_rebuild(&token).await.unwrap());
    assert!(store.intact().await.unwrap());
    assert_eq!(store.read_whole(&buckets).await.unwrap(), Some(counted));

    // A loss during a rebuild keeps them not intact.
    let token = store.begin_rebuild().await.unwrap();
    cluster.restart(restarted);
    assert!(!store.finish_rebuild(&token).await.unwrap());
    assert!(!store.intact().await.unwrap());

    // The spill buffer works across the restarts (its slot is one master's).
    store.push(&recent_events()).await.unwrap();
    assert_eq!(store.len().await.unwrap(), 12);
    let claim = store.claim(100).await.unwrap().unwrap();
    assert_eq!(claim.events.len(), 12);
    store.ack(&claim).await.unwrap();
    assert_eq!(store.len().await.unwrap(), 0);
}

/// The cluster client sends a request again after a broken connection: a flush sent
/// twice under one name counts once, in every group it touches.
#[tokio::test]
async fn a_flush_sent_again_counts_once() {
    let cluster = TestCluster::start(3);
    let store = cluster.store(RedisOptions::default()).await;
    let batch = CounterBatch::from_events(&Calendar::default(), &recent_events());
    store.apply_once(&batch, "flush-1").await.unwrap();
    let today = Utc::now().date_naive();
    let buckets: Vec<Bucket> = (-2..=1)
        .flat_map(|offset| {
            let day = Period::Day(today + TimeDelta::days(offset));
            [Bucket::all(day), Bucket::agent(day, "a")]
        })
        .collect();
    let once = store.read(&buckets).await.unwrap();
    assert!(once.iter().all(|sums| sums.total_events() > 0), "{once:?}");
    store.apply_once(&batch, "flush-1").await.unwrap();
    assert_eq!(store.read(&buckets).await.unwrap(), once, "sent again");
    store.apply_once(&batch, "flush-2").await.unwrap();
    let twice = store.read(&buckets).await.unwrap();
    for (once, twice) in once.iter().zip(&twice) {
        assert_eq!(
            twice.total_events(),
            2 * once.total_events(),
            "another flush"
        );
    }
}

/// A failover to a replica, and a failback to the first master (which meanwhile
/// copied its replica's data, the marker included): neither passes for whole
/// counters, since either may have lost the last writes; a rebuild makes them whole.
#[tokio::test]
async fn a_failover_and_a_failback_read_as_not_whole() {
    let cluster = TestCluster::start_with_replicas(3, 1);
    let store = cluster.store(RedisOptions::default()).await;
    let batch = CounterBatch::from_events(&Calendar::default(), &recent_events());
    store.apply(&batch).await.unwrap();
    let token = store.begin_rebuild().await.unwrap();
    assert!(store.finish_rebuild(&token).await.unwrap());
    let today = Bucket::all(Period::Day(Utc::now().date_naive()));
    let counted = store.read(std::slice::from_ref(&today)).await.unwrap();
    let whole = || async {
        store
            .read_whole(std::slice::from_ref(&today))
            .await
            .unwrap()
    };
    assert_eq!(whole().await, Some(counted.clone()));

    let master = cluster.node_of(&store.keys().bucket(&today).0);
    let replica = cluster.replica_of(master);
    cluster.fail_over_to(replica);
    assert_eq!(cluster.node_of(&store.keys().bucket(&today).0), replica);
    assert_eq!(whole().await, None, "after a failover");
    assert!(!store.intact().await.unwrap());

    // Back to the first master, with the marker it wrote: still not whole.
    cluster.fail_over_to(master);
    assert_eq!(cluster.node_of(&store.keys().bucket(&today).0), master);
    assert_eq!(whole().await, None, "after a failback");

    let token = store.begin_rebuild().await.unwrap();
    assert!(store.finish_rebuild(&token).await.unwrap());
    assert_eq!(whole().await, Some(counted));
}
