//! The async runtimes behind `kgroup join --runtime tokio|async-std`: each
//! wraps its adapter's handle in the synchronous [`Member`] interface the
//! command's loop uses. The adapter's task runs on the runtime's own threads,
//! so heartbeats go on while the command prints.

use std::time::Duration;

use kgroup::driver::{Command, DriverError, Reply};
use kgroup::{Config, Event};

use crate::join::Member;

/// `kgroup-tokio` on a one-worker multi-thread runtime.
pub struct TokioMember {
    rt: tokio::runtime::Runtime,
    consumer: kgroup_tokio::Consumer,
}

/// Start a tokio member.
pub fn tokio_member(config: Config, bootstrap: &str) -> Result<TokioMember, String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the tokio runtime: {e}"))?;
    let consumer = {
        let _guard = rt.enter();
        kgroup_tokio::Consumer::new(config, bootstrap).map_err(|e: DriverError| e.to_string())?
    };
    Ok(TokioMember { rt, consumer })
}

impl Member for TokioMember {
    fn next_event(&mut self, timeout: Duration) -> Option<Event> {
        let consumer = &mut self.consumer;
        self.rt
            .block_on(async { tokio::time::timeout(timeout, consumer.next_event()).await })
            .ok()
            .flatten()
    }
    fn apply(&mut self, command: Command) -> Reply {
        self.rt.block_on(self.consumer.apply(command))
    }
}

/// `kgroup-async-std`, its driving future spawned on async-std.
pub struct AsyncStdMember {
    consumer: kgroup_async_std::Consumer,
}

/// Start an async-std member.
pub fn async_std_member(config: Config, bootstrap: &str) -> Result<AsyncStdMember, String> {
    let (consumer, driving) =
        kgroup_async_std::Consumer::new(config, bootstrap).map_err(|e| e.to_string())?;
    async_std::task::spawn(driving);
    Ok(AsyncStdMember { consumer })
}

impl Member for AsyncStdMember {
    fn next_event(&mut self, timeout: Duration) -> Option<Event> {
        let consumer = &mut self.consumer;
        async_std::task::block_on(async {
            async_std::future::timeout(timeout, consumer.next_event()).await
        })
        .ok()
        .flatten()
    }
    fn apply(&mut self, command: Command) -> Reply {
        async_std::task::block_on(self.consumer.apply(command))
    }
}
