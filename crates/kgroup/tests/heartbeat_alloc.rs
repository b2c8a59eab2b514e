//! In the stable state a heartbeat round (the timer fires, the request is
//! built and handed out, the response is handled) makes no heap allocation.
//!
//! Its own test binary: the global allocator counts allocations made by the
//! engine calls only (the test's own frame building is not counted), after a
//! warm-up that lets the reusable buffers reach their working size.

mod membership_harness;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::{BufMut, BytesMut};
use kgroup::kafka_protocol::messages::ApiKey;
use kgroup::{GroupState, Timer};
use membership_harness::*;

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    // Per thread: tests run in parallel, and another test's counted
    // allocations must not show up in this one's total.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

fn count_one() {
    if COUNTING.with(Cell::get) {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
    }
}

// SAFETY: forwards to the system allocator; only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn counted<T>(f: impl FnOnce() -> T) -> T {
    COUNTING.with(|c| c.set(true));
    let out = f();
    COUNTING.with(|c| c.set(false));
    out
}

/// One heartbeat round; returns allocations made inside engine calls.
fn round(h: &mut Harness, frames: &mut BytesMut) -> usize {
    let before = allocations();
    let (at, timer) = counted(|| h.group.poll_timeout_reason()).expect("a timer");
    assert_eq!(timer, Timer::Heartbeat);
    h.now = at;
    let now = h.now;
    counted(|| h.group.handle_timeout(now));
    let t = counted(|| h.group.poll_transmit(now)).expect("a heartbeat");
    assert_eq!(t.api, ApiKey::Heartbeat);
    assert!(counted(|| h.group.poll_transmit(now)).is_none());
    // Heartbeat response v4 (flexible): correlation id, header tags,
    // throttle, error code, body tags. Built outside the count.
    frames.reserve(16);
    frames.put_i32(t.id.0);
    frames.put_u8(0);
    frames.put_i32(0);
    frames.put_i16(0);
    frames.put_u8(0);
    let frame = frames.split().freeze();
    let id = t.id;
    drop(t);
    counted(|| h.group.handle_response(now, id, frame));
    assert!(counted(|| h.group.poll_event()).is_none());
    allocations() - before
}

#[test]
fn a_stable_heartbeat_round_makes_no_heap_allocation() {
    let mut h = Harness::new(
        Harness::config(&[coop_first()])
            .instance_id("pod-1")
            .build()
            .unwrap(),
    );
    h.join_stable(
        &["orders", "payments"],
        "member-1",
        7,
        &[("orders", 0), ("payments", 3)],
    );
    h.take_events();
    let mut frames = BytesMut::with_capacity(1024);
    // Warm-up: buffers reach their working size, shared handles are made.
    for _ in 0..4 {
        round(&mut h, &mut frames);
    }
    let mut total = 0;
    for _ in 0..1000 {
        total += round(&mut h, &mut frames);
    }
    assert_eq!(h.group.state(), GroupState::Stable);
    assert_eq!(total, 0, "allocations in 1000 stable heartbeat rounds");
}

#[test]
fn the_counter_sees_allocations() {
    let before = allocations();
    let v = counted(|| vec![1u8; 64]);
    assert_eq!(v.len(), 64);
    assert!(allocations() > before);
}
