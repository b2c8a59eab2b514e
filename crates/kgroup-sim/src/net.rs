//! Connections between simulated members and brokers, shared by the seeded
//! simulator ([`crate::sim`]) and the scripted runner ([`crate::script`]).
//!
//! A member's engine names its connections ([`ConnectionId`]); the cluster
//! numbers its own. This table maps one to the other, knows which requests
//! are still unanswered on each connection (they fail when it dies, as a
//! client's connection layer reports them), and keeps each direction FIFO:
//! a frame never overtakes an earlier one on the same connection, whatever
//! latency it drew, because TCP does not reorder.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kgroup::ConnectionId;

use crate::clock::SimTime;

/// One open connection.
#[derive(Debug)]
pub(crate) struct Link {
    /// The member at the client end.
    pub member: usize,
    /// Which run of that member opened it (a restarted member never gets
    /// the answers meant for its previous run).
    pub incarnation: u32,
    /// The broker at the other end.
    pub broker: i32,
    /// Correlation ids sent on it and not answered.
    inflight: BTreeSet<i32>,
    /// Arrival time of the last frame towards the broker.
    last_up: SimTime,
    /// Arrival time of the last frame towards the member.
    last_down: SimTime,
}

impl Link {
    /// The requests still unanswered on it.
    pub fn into_inflight(self) -> impl Iterator<Item = i32> {
        self.inflight.into_iter()
    }
}

/// Every open connection, by the cluster's connection number.
#[derive(Debug)]
pub(crate) struct Links {
    by_conn: BTreeMap<u64, Link>,
    next_conn: u64,
}

impl Default for Links {
    fn default() -> Self {
        Self {
            by_conn: BTreeMap::new(),
            next_conn: 1,
        }
    }
}

impl Links {
    /// The connection that carries the member's engine connection `id` to
    /// `broker`: the one already open, or a new one if `connect` (the
    /// cluster accepting it) says yes. `None`: refused.
    ///
    /// `routes` is the member's own map of engine connections; an entry
    /// that leads to another broker (the engine reused an id) is replaced.
    #[allow(clippy::too_many_arguments)]
    pub fn route(
        &mut self,
        routes: &mut BTreeMap<ConnectionId, u64>,
        id: ConnectionId,
        member: usize,
        incarnation: u32,
        broker: i32,
        now: SimTime,
        connect: impl FnOnce(u64) -> bool,
    ) -> Option<u64> {
        if let Some(&c) = routes.get(&id)
            && self.by_conn.get(&c).is_some_and(|l| l.broker == broker)
        {
            return Some(c);
        }
        let c = self.next_conn;
        self.next_conn += 1;
        if !connect(c) {
            return None;
        }
        routes.insert(id, c);
        self.by_conn.insert(
            c,
            Link {
                member,
                incarnation,
                broker,
                inflight: BTreeSet::new(),
                last_up: now,
                last_down: now,
            },
        );
        Some(c)
    }

    /// Request `corr` leaves on `conn` at `now`: when it reaches the broker
    /// (`latency` later, never before the frame sent ahead of it).
    pub fn send_up(
        &mut self,
        conn: u64,
        corr: i32,
        now: SimTime,
        latency: Duration,
    ) -> Option<SimTime> {
        let link = self.by_conn.get_mut(&conn)?;
        link.inflight.insert(corr);
        let at = (now + latency).max(link.last_up);
        link.last_up = at;
        Some(at)
    }

    /// The broker answered `corr` on `conn`: it is no longer in flight.
    /// The link's member and incarnation, if the connection is still open.
    pub fn answered(&mut self, conn: u64, corr: i32) -> Option<(usize, u32)> {
        let link = self.by_conn.get_mut(&conn)?;
        link.inflight.remove(&corr);
        Some((link.member, link.incarnation))
    }

    /// A response leaves the broker on `conn` at `now`: when it reaches the
    /// member (`latency` later, never before the one sent ahead of it).
    pub fn send_down(&mut self, conn: u64, now: SimTime, latency: Duration) -> Option<SimTime> {
        let link = self.by_conn.get_mut(&conn)?;
        let at = (now + latency).max(link.last_down);
        link.last_down = at;
        Some(at)
    }

    /// Close `conn`; what was open there, with its unanswered requests.
    pub fn remove(&mut self, conn: u64) -> Option<Link> {
        self.by_conn.remove(&conn)
    }

    /// The connections of `member`.
    pub fn of_member(&self, member: usize) -> Vec<u64> {
        self.select(|l| l.member == member)
    }

    /// The connections to broker `b`.
    pub fn to_broker(&self, b: i32) -> Vec<u64> {
        self.select(|l| l.broker == b)
    }

    fn select(&self, which: impl Fn(&Link) -> bool) -> Vec<u64> {
        self.by_conn
            .iter()
            .filter(|(_, l)| which(l))
            .map(|(c, _)| *c)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn frames_on_one_connection_never_overtake_each_other() {
        let mut links = Links::default();
        let mut routes = BTreeMap::new();
        let id = ConnectionId(1);
        let c = links
            .route(&mut routes, id, 0, 0, 2, SimTime::ZERO, |_| true)
            .unwrap();
        // The second request drew a shorter latency: it still arrives after.
        let a = links.send_up(c, 1, SimTime::ZERO, ms(50)).unwrap();
        let b = links.send_up(c, 2, SimTime::ZERO + ms(1), ms(5)).unwrap();
        assert!(b >= a);
        let a = links.send_down(c, SimTime::ZERO + ms(60), ms(40)).unwrap();
        let b = links.send_down(c, SimTime::ZERO + ms(61), ms(1)).unwrap();
        assert!(b >= a);
        // Same engine connection, same broker: the same link.
        let again = links.route(&mut routes, id, 0, 0, 2, SimTime::ZERO, |_| {
            panic!("no new connection")
        });
        assert_eq!(again, Some(c));
        // Request 1 answered; request 2 is what a failure reports.
        assert_eq!(links.answered(c, 1), Some((0, 0)));
        let left: Vec<i32> = links.remove(c).unwrap().into_inflight().collect();
        assert_eq!(left, vec![2]);
    }

    #[test]
    fn a_refused_connect_opens_nothing_and_another_broker_gets_a_new_link() {
        let mut links = Links::default();
        let mut routes = BTreeMap::new();
        let id = ConnectionId(7);
        assert_eq!(
            links.route(&mut routes, id, 3, 1, 0, SimTime::ZERO, |_| false),
            None
        );
        assert!(routes.is_empty() && links.of_member(3).is_empty());
        let c0 = links
            .route(&mut routes, id, 3, 1, 0, SimTime::ZERO, |_| true)
            .unwrap();
        let c1 = links
            .route(&mut routes, id, 3, 1, 1, SimTime::ZERO, |_| true)
            .unwrap();
        assert_ne!(c0, c1);
        assert_eq!(routes.get(&id), Some(&c1));
        assert_eq!(links.to_broker(0), vec![c0]);
        assert_eq!(links.of_member(3), vec![c0, c1]);
    }
}
