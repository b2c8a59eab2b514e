//! Support shared by the fuzz targets: an allocator that enforces the
//! per-allocation limit itself.
//!
//! libFuzzer's `-malloc_limit_mb` relies on the sanitizer's malloc hooks,
//! which a build without a sanitizer (`cargo fuzz run -s none`, the only
//! kind stable Rust can make) does not have. [`CappedAlloc`] wraps the
//! system allocator and aborts on any single request above
//! [`MAX_ALLOCATION`], so an unbounded allocation from a wire count is a
//! crash libFuzzer records, with or without a sanitizer.

use std::alloc::{GlobalAlloc, Layout, System};

/// The largest single allocation allowed: 64 MiB, as `-malloc_limit_mb=64`.
pub const MAX_ALLOCATION: usize = 64 << 20;

/// The system allocator, refusing allocations above [`MAX_ALLOCATION`].
#[derive(Debug)]
pub struct CappedAlloc;

fn too_large(size: usize) -> ! {
    // No allocation here: write a fixed message and abort (libFuzzer
    // reports the abort as a crash and saves the input).
    eprintln!("==CappedAlloc== single allocation of {size} bytes exceeds the 64 MiB limit");
    std::process::abort();
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, after a size check that can only abort.
unsafe impl GlobalAlloc for CappedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOCATION {
            too_large(layout.size());
        }
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOCATION {
            too_large(layout.size());
        }
        // SAFETY: forwarded contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > MAX_ALLOCATION {
            too_large(new_size);
        }
        // SAFETY: forwarded contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}
