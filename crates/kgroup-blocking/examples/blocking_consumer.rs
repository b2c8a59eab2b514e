//! A blocking consumer-group member: joins, prints its assignment, marks a
//! pretend position processed every second (auto-commit commits it), and
//! leaves on end of stdin or after 60 s.
//!
//! ```sh
//! cargo run -p kgroup-blocking --example blocking_consumer -- 127.0.0.1:9092 my-group orders
//! ```
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kgroup::offsets::OffsetEvent;
use kgroup::{Config, Event, TopicPartition};
use kgroup_blocking::Consumer;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let group = args.next().unwrap_or_else(|| "example-group".into());
    let topic = args.next().unwrap_or_else(|| "orders".into());

    let assignor = kgroup::assignor::builtin("cooperative-sticky").ok_or("no such assignor")?;
    let config = Config::builder(group)
        .assignors(vec![assignor])
        .session_timeout(Duration::from_secs(10))
        .heartbeat_interval(Duration::from_secs(3))
        .build()?;
    let mut consumer = Consumer::new(config, &bootstrap)?;
    consumer.subscribe([topic]);

    let stop_at = Instant::now() + Duration::from_secs(60);
    let mut positions: BTreeMap<TopicPartition, i64> = BTreeMap::new();
    let mut next_tick = Instant::now() + Duration::from_secs(1);
    while Instant::now() < stop_at {
        if let Some(event) = consumer.poll(Duration::from_millis(200)) {
            match event {
                Event::Assigned { partitions, .. } => {
                    println!("assigned {partitions:?}");
                    positions.retain(|tp, _| partitions.contains(tp));
                    for tp in partitions {
                        positions.entry(tp).or_insert(0);
                    }
                }
                Event::Revoked { partitions } | Event::Lost { partitions, .. } => {
                    println!("giving up {partitions:?}");
                    for tp in &partitions {
                        positions.remove(tp);
                    }
                }
                Event::Offsets(OffsetEvent::CommitDone {
                    committed, result, ..
                }) => {
                    // `committed`: what the broker accepted, offset by offset.
                    println!("commit: {result:?}, wrote {committed:?}");
                }
                Event::Fatal(e) => return Err(e.into()),
                other => println!("{other:?}"),
            }
        }
        if Instant::now() >= next_tick {
            next_tick += Duration::from_secs(1);
            for (tp, pos) in positions.iter_mut() {
                *pos += 1;
                let _ = consumer.mark_processed(tp.clone(), *pos);
            }
        }
    }
    for event in consumer.close_within(Duration::from_secs(10)) {
        println!("{event:?}");
    }
    Ok(())
}
