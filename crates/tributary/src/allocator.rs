//! The process's memory allocator: small blocks from mimalloc, large ones
//! from the system allocator (glibc).
//!
//! Why two. A snapshot moves millions of small rows and strings from reader
//! tasks to the writer loop and its encode threads, so they are allocated on
//! one thread and freed on another: glibc's malloc bookkeeping (arena locks,
//! fastbin consolidation) was ~25 % of a chunked copy's CPU profile, and
//! mimalloc, built for that pattern, cuts the copy's CPU per row by ~25 %.
//! But mimalloc gives large blocks (a batch's hash maps, Arrow buffers,
//! Parquet pages: tens of MB, allocated and freed once per batch) fresh pages
//! from the OS every time, which the kernel must zero: deletion-vector
//! updates cost ~30 % more CPU and ~45 MB more peak RSS with mimalloc alone.
//! glibc reuses its heap for those. A block's size decides, and a block is
//! freed with the size it was allocated with (the `GlobalAlloc` contract), so
//! each block goes back to the allocator it came from. Figures in the README
//! ("Allocator").

use std::alloc::{GlobalAlloc, Layout, System};

/// Blocks of at least this many bytes come from the system allocator. A row
/// and its strings are far smaller; 1, 4, 8, 16 and 64 KiB gave the same
/// snapshot speed, and 64 KiB 10 – 20 MB more peak RSS on updates (README).
const LARGE_BYTES: usize = 8 * 1024;

pub struct SplitAllocator;

fn is_large(size: usize) -> bool {
    size >= LARGE_BYTES
}

// SAFETY: every block is allocated and freed by the same allocator, chosen
// by its size, which `GlobalAlloc` guarantees is passed unchanged to
// `dealloc` / `realloc`; a `realloc` that crosses the threshold copies.
unsafe impl GlobalAlloc for SplitAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_large(layout.size()) {
            System.alloc(layout)
        } else {
            mimalloc::MiMalloc.alloc(layout)
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_large(layout.size()) {
            System.alloc_zeroed(layout)
        } else {
            mimalloc::MiMalloc.alloc_zeroed(layout)
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_large(layout.size()) {
            System.dealloc(ptr, layout)
        } else {
            mimalloc::MiMalloc.dealloc(ptr, layout)
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        match (is_large(layout.size()), is_large(new_size)) {
            (true, true) => System.realloc(ptr, layout, new_size),
            (false, false) => mimalloc::MiMalloc.realloc(ptr, layout, new_size),
            _ => {
                // SAFETY: the caller guarantees `new_size`, rounded up to the
                // alignment, does not overflow (`GlobalAlloc::realloc`).
                let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
                let new_ptr = self.alloc(new_layout);
                if !new_ptr.is_null() {
                    std::ptr::copy_nonoverlapping(ptr, new_ptr, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                new_ptr
            }
        }
    }
}

/// mimalloc's `purge_delay` option (index 15 in `mi_option_e`; the sys crate
/// names no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed small-block pages go back to the OS after 10 ms instead of
/// mimalloc's default 1 s, so that a burst (a huge transaction's parts, a
/// compaction) does not hold its memory while the next one starts.
/// `MIMALLOC_PURGE_DELAY` set by the user wins.
pub fn tune() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one runtime option of the allocator; no memory is touched.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 10) };
    }
    limit_malloc_arenas();
}

/// glibc gives threads that allocate their own malloc arenas (up to 8 per
/// core), and memory freed by the encode / rewrite threads stays in them:
/// with glibc alone, two arenas kept the update/delete benchmark at 275 MB
/// peak RSS instead of 311 – 323 MB at the same throughput (not re-measured
/// since glibc holds only the large blocks). `MALLOC_ARENA_MAX` set by the
/// user wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only tunes the allocator; called before any thread starts.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{SplitAllocator, LARGE_BYTES};
    use std::alloc::{GlobalAlloc, Layout};

    #[test]
    fn a_block_keeps_its_bytes_when_a_realloc_moves_it_between_the_two_allocators() {
        let small = Layout::from_size_align(1000, 16).unwrap();
        unsafe {
            let ptr = SplitAllocator.alloc(small);
            assert!(!ptr.is_null());
            for i in 0..small.size() {
                *ptr.add(i) = (i % 251) as u8;
            }
            // small (mimalloc) -> large (system)
            let large = SplitAllocator.realloc(ptr, small, LARGE_BYTES * 2);
            assert!(!large.is_null());
            assert_eq!(large as usize % 16, 0, "the alignment is kept");
            assert!((0..small.size()).all(|i| *large.add(i) == (i % 251) as u8));
            *large.add(LARGE_BYTES * 2 - 1) = 7;
            // large (system) -> small (mimalloc): the first 500 bytes survive
            let large_layout = Layout::from_size_align(LARGE_BYTES * 2, 16).unwrap();
            let back = SplitAllocator.realloc(large, large_layout, 500);
            assert!(!back.is_null());
            assert!((0..500).all(|i| *back.add(i) == (i % 251) as u8));
            SplitAllocator.dealloc(back, Layout::from_size_align(500, 16).unwrap());
            // large -> larger stays with the system allocator
            let zeroed = SplitAllocator.alloc_zeroed(large_layout);
            assert!((0..large_layout.size()).all(|i| *zeroed.add(i) == 0));
            let grown = SplitAllocator.realloc(zeroed, large_layout, LARGE_BYTES * 4);
            assert!(!grown.is_null());
            SplitAllocator.dealloc(grown, Layout::from_size_align(LARGE_BYTES * 4, 16).unwrap());
        }
    }
}
