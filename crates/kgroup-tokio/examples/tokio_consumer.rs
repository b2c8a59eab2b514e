//! A tokio consumer-group member: joins, prints its events, marks a pretend
//! position processed every second (auto-commit commits it), and closes on
//! Ctrl-C or after 60 s.
//!
//! ```sh
//! cargo run -p kgroup-tokio --example tokio_consumer -- 127.0.0.1:9092 my-group orders
//! ```
use std::collections::BTreeMap;
use std::time::Duration;

use kgroup::offsets::{OffsetEvent, OffsetsConfig};
use kgroup::{Config, Event, TopicPartition};
use kgroup_tokio::Consumer;

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let group = args.next().unwrap_or_else(|| "example-group".into());
    let topic = args.next().unwrap_or_else(|| "orders".into());

    let assignor = kgroup::assignor::builtin("cooperative-sticky").ok_or("no such assignor")?;
    let config = Config::builder(group.clone())
        .assignors(vec![assignor])
        .session_timeout(Duration::from_secs(10))
        .offsets(OffsetsConfig::new(group).with_auto_commit(Some(Duration::from_secs(1))))
        .build()?;
    let mut consumer = Consumer::new(config, &bootstrap)?;
    consumer.subscribe([topic]).await;

    let mut positions: BTreeMap<TopicPartition, i64> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let stop = tokio::time::sleep(Duration::from_secs(60));
    tokio::pin!(stop);
    let mut closing = false;
    loop {
        tokio::select! {
            event = consumer.next_event() => match event {
                Some(Event::Assigned { partitions, .. }) => {
                    println!("assigned {partitions:?}");
                    positions.retain(|tp, _| partitions.contains(tp));
                    for tp in partitions {
                        positions.entry(tp).or_insert(0);
                    }
                }
                Some(Event::Revoked { partitions } | Event::Lost { partitions, .. }) => {
                    println!("giving up {partitions:?}");
                    positions.retain(|tp, _| !partitions.contains(tp));
                }
                Some(Event::Offsets(OffsetEvent::CommitDone { committed, result, .. })) => {
                    // What the broker accepted, with the offsets written.
                    println!("commit {result:?}: {committed:?}");
                }
                Some(Event::Left) | None => break,
                Some(other) => println!("{other:?}"),
            },
            _ = tick.tick(), if !closing => {
                for (tp, pos) in positions.iter_mut() {
                    *pos += 1;
                    let _ = consumer.mark_processed(tp.clone(), *pos).await;
                }
            }
            _ = &mut stop, if !closing => { closing = true; consumer.close().await; }
            _ = tokio::signal::ctrl_c(), if !closing => { closing = true; consumer.close().await; }
        }
    }
    Ok(())
}
