//! One consumer-group member on smol, or on async-std with `--async-std`:
//! the same adapter runs under both. Joins, prints its events for 30 s,
//! then closes (committing marked offsets, leaving the group).
//!
//! ```sh
//! cargo run -p kgroup-async-std --example smol_consumer -- 127.0.0.1:9092 my-group orders
//! cargo run -p kgroup-async-std --example smol_consumer -- 127.0.0.1:9092 my-group orders --async-std
//! ```
use std::time::Duration;

use kgroup::{Config, Event};
use kgroup_async_std::Consumer;

async fn run(mut consumer: Consumer, topic: String) {
    consumer.subscribe([topic]).await;
    let stop = async_io::Timer::after(Duration::from_secs(30));
    futures_lite::pin!(stop);
    let mut closing = false;
    loop {
        let next = futures_lite::future::or(async { Some(consumer.next_event().await) }, async {
            if !closing {
                (&mut stop).await;
            } else {
                std::future::pending::<()>().await;
            }
            None
        });
        match next.await {
            Some(Some(Event::Left)) | Some(None) => break,
            Some(Some(event)) => println!("{event:?}"),
            None => {
                closing = true;
                consumer.close().await;
            }
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bootstrap = args
        .first()
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:9092".into());
    let group = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "example-group".into());
    let topic = args.get(2).cloned().unwrap_or_else(|| "orders".into());
    let on_async_std = args.iter().any(|a| a == "--async-std");

    let assignor = kgroup::assignor::builtin("cooperative-sticky").ok_or("no such assignor")?;
    let config = Config::builder(group)
        .assignors(vec![assignor])
        .session_timeout(Duration::from_secs(10))
        .build()?;
    let (consumer, driving) = Consumer::new(config, &bootstrap)?;
    if on_async_std {
        async_std::task::block_on(async {
            async_std::task::spawn(driving);
            run(consumer, topic).await;
        });
    } else {
        smol::block_on(async {
            smol::spawn(driving).detach();
            run(consumer, topic).await;
        });
    }
    Ok(())
}
