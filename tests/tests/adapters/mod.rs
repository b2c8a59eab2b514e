//! Every kgroup adapter behind one interface, for the end-to-end tests that
//! run the same scenario on each: kgroup-blocking, kgroup-tokio, and
//! kgroup-async-std under async-std and under smol.
#![allow(dead_code)] // each test binary uses what it needs

use std::time::Duration;

use kgroup::driver::{Command, Reply};
use kgroup::{Config, Event};

/// Which adapter drives a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Adapter {
    /// kgroup-blocking.
    Blocking,
    /// kgroup-tokio (a one-worker runtime of its own).
    Tokio,
    /// kgroup-async-std under async-std.
    AsyncStd,
    /// kgroup-async-std under smol.
    Smol,
}

/// A member as the harness drives it, whatever the adapter.
pub trait Member {
    /// The next event, waiting at most `timeout`.
    fn next_event(&mut self, timeout: Duration) -> Option<Event>;
    /// Apply a command and return its reply.
    fn apply(&mut self, command: Command) -> Reply;
}

impl Member for kgroup_blocking::Consumer {
    fn next_event(&mut self, timeout: Duration) -> Option<Event> {
        self.poll(timeout)
    }
    fn apply(&mut self, command: Command) -> Reply {
        kgroup_blocking::Consumer::apply(self, command)
    }
}

pub struct TokioMember(tokio::runtime::Runtime, kgroup_tokio::Consumer);

impl Member for TokioMember {
    fn next_event(&mut self, timeout: Duration) -> Option<Event> {
        let c = &mut self.1;
        self.0
            .block_on(async { tokio::time::timeout(timeout, c.next_event()).await })
            .ok()
            .flatten()
    }
    fn apply(&mut self, command: Command) -> Reply {
        self.0.block_on(self.1.apply(command))
    }
}

pub struct AsyncStdMember(kgroup_async_std::Consumer);

impl Member for AsyncStdMember {
    fn next_event(&mut self, timeout: Duration) -> Option<Event> {
        let c = &mut self.0;
        async_std::task::block_on(async {
            async_std::future::timeout(timeout, c.next_event()).await
        })
        .ok()
        .flatten()
    }
    fn apply(&mut self, command: Command) -> Reply {
        async_std::task::block_on(self.0.apply(command))
    }
}

pub struct SmolMember(kgroup_async_std::Consumer);

impl Member for SmolMember {
    fn next_event(&mut self, timeout: Duration) -> Option<Event> {
        let c = &mut self.0;
        smol::block_on(smol::future::or(c.next_event(), async {
            smol::Timer::after(timeout).await;
            None
        }))
    }
    fn apply(&mut self, command: Command) -> Reply {
        smol::block_on(self.0.apply(command))
    }
}

/// A member of `config` on `adapter`, reaching the cluster through
/// `bootstrap`.
pub fn member(adapter: Adapter, config: Config, bootstrap: &str) -> Box<dyn Member> {
    match adapter {
        Adapter::Blocking => {
            Box::new(kgroup_blocking::Consumer::new(config, bootstrap).expect("blocking"))
        }
        Adapter::Tokio => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("tokio runtime");
            let c = {
                let _g = rt.enter();
                kgroup_tokio::Consumer::new(config, bootstrap).expect("tokio consumer")
            };
            Box::new(TokioMember(rt, c))
        }
        Adapter::AsyncStd => {
            let (c, driving) =
                kgroup_async_std::Consumer::new(config, bootstrap).expect("async-std");
            async_std::task::spawn(driving);
            Box::new(AsyncStdMember(c))
        }
        Adapter::Smol => {
            let (c, driving) = kgroup_async_std::Consumer::new(config, bootstrap).expect("smol");
            smol::spawn(driving).detach();
            Box::new(SmolMember(c))
        }
    }
}
