//! The guest's allocator: freed small blocks are kept per size class and handed to the
//! next allocation of that class, in front of the standard library's allocator
//! (wasi-libc's dlmalloc on `wasm32-wasip2`).
//!
//! Why: a plugin allocates and frees the same few dozen small objects for every event
//! (the event's strings, the row's decoded columns, the record's buffers). Compiled to
//! WebAssembly, each trip through dlmalloc is a few hundred instructions and two function
//! entries, each with the host's CPU-deadline check: ~11% of `customers-cdm`'s time in
//! the runtime benchmark (BENCHMARKS.md, "A block cache in front of the guest's
//! allocator"). A cached block is taken or given back with a handful of loads and stores.
//!
//! Bounded: a class keeps at most [`CLASS_CACHE_BYTES`] of freed blocks; past that, blocks
//! go back to the allocator behind, so at most `CLASSES × CLASS_CACHE_BYTES` (576 KiB)
//! sits in the cache, and memory a plugin frees in bulk is free for any size again.
//! Sizes are rounded up to a power of two (8 B to 2 KiB); larger blocks, and blocks
//! aligned beyond [`BLOCK_ALIGN`], go straight to the allocator behind.
//!
//! The SDK installs it as the global allocator of `wasm32` builds without threads (the
//! cache is not synchronised), under the default feature `cached-allocator`. A plugin
//! that brings its own `#[global_allocator]` turns the feature off.

// Where the cache is not the global allocator (native builds, the feature off), only
// its tests use it.
#![cfg_attr(
    not(all(
        target_arch = "wasm32",
        not(target_feature = "atomics"),
        feature = "cached-allocator"
    )),
    allow(dead_code)
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::ptr;

/// The smallest class, as a shift: 8 bytes, room for the free list's link on any target.
const MIN_CLASS_SHIFT: u32 = 3;
/// Classes of 8 B, 16 B, ... 2 KiB. Past 2 KiB the allocator behind is cheap relative to
/// the bytes written into the block.
const CLASSES: usize = 9;
/// The largest size served from a class.
const MAX_CLASS_SIZE: usize = 1 << (MIN_CLASS_SHIFT as usize + CLASSES - 1);
/// Blocks are allocated behind with this alignment; a layout that needs more bypasses
/// the cache. 8 is what the allocator behind gives every block anyway on wasm32.
const BLOCK_ALIGN: usize = 8;
/// The most freed bytes one class keeps: a batch's worth of an event's small objects,
/// reused event after event, while a plugin that frees megabytes at once gives them back.
pub const CLASS_CACHE_BYTES: usize = 64 * 1024;

/// One size class: a singly linked list through the freed blocks themselves.
#[derive(Clone, Copy)]
struct Class {
    head: *mut u8,
    count: usize,
}

/// A per-class cache of freed blocks in front of the allocator `A`. Not synchronised:
/// only for a single thread (see the module's header).
pub struct BlockCache<A = System> {
    behind: A,
    classes: UnsafeCell<[Class; CLASSES]>,
}

impl<A> BlockCache<A> {
    /// An empty cache in front of `behind`.
    pub const fn new(behind: A) -> Self {
        Self {
            behind,
            classes: UnsafeCell::new(
                [Class {
                    head: ptr::null_mut(),
                    count: 0,
                }; CLASSES],
            ),
        }
    }

    /// The number of freed blocks each class holds now (for tests).
    #[cfg(test)]
    fn cached(&self) -> [usize; CLASSES] {
        // SAFETY: single-threaded by contract; no reference into the array outlives this.
        unsafe { (*self.classes.get()).map(|class| class.count) }
    }
}

/// The class of a block of `size` bytes aligned to `align`, if the cache serves it.
#[inline]
fn class_of(size: usize, align: usize) -> Option<usize> {
    if size > MAX_CLASS_SIZE || align > BLOCK_ALIGN {
        return None;
    }
    let shift = (usize::BITS - size.saturating_sub(1).leading_zeros()).max(MIN_CLASS_SHIFT);
    Some((shift - MIN_CLASS_SHIFT) as usize)
}

/// The layout every block of `class` is allocated behind with.
#[inline]
fn class_layout(class: usize) -> Layout {
    let size = 1usize << (class + MIN_CLASS_SHIFT as usize);
    // SAFETY: a power of two up to 2 KiB with alignment 8 is a valid layout.
    unsafe { Layout::from_size_align_unchecked(size, BLOCK_ALIGN) }
}

/// The most blocks `class` keeps.
#[inline]
fn class_limit(class: usize) -> usize {
    CLASS_CACHE_BYTES >> (class + MIN_CLASS_SHIFT as usize)
}

// SAFETY: every block handed out is either a whole block of the allocator behind (of the
// class's size, so at least the layout's size, aligned to 8 ≥ the layout's alignment) or
// one returned by it for the very layout asked; a block is in at most one list, and only
// blocks given back through `dealloc` (so no longer in use) are put in a list.
unsafe impl<A: GlobalAlloc> GlobalAlloc for BlockCache<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(class) = class_of(layout.size(), layout.align()) else {
            // SAFETY: the caller's layout, as given.
            return unsafe { self.behind.alloc(layout) };
        };
        // SAFETY: single-threaded by contract, and `behind` never calls back into us.
        let slot = unsafe { &mut (*self.classes.get())[class] };
        if slot.head.is_null() {
            // SAFETY: a valid, non-zero-sized layout.
            return unsafe { self.behind.alloc(class_layout(class)) };
        }
        let block = slot.head;
        // SAFETY: a cached block's first word is the link to the next one.
        slot.head = unsafe { block.cast::<*mut u8>().read() };
        slot.count -= 1;
        block
    }

    #[inline]
    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        let Some(class) = class_of(layout.size(), layout.align()) else {
            // SAFETY: allocated behind with this very layout (see `alloc`).
            return unsafe { self.behind.dealloc(block, layout) };
        };
        // SAFETY: as in `alloc`.
        let slot = unsafe { &mut (*self.classes.get())[class] };
        if slot.count >= class_limit(class) {
            // SAFETY: every block of a class was allocated behind with its class layout.
            return unsafe { self.behind.dealloc(block, class_layout(class)) };
        }
        // SAFETY: the block is ours again, at least 8 bytes and aligned to 8.
        unsafe { block.cast::<*mut u8>().write(slot.head) };
        slot.head = block;
        slot.count += 1;
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match class_of(layout.size(), layout.align()) {
            None => unsafe { self.behind.alloc_zeroed(layout) },
            Some(_) => {
                // SAFETY: the caller's layout; the block has at least `size` bytes.
                let block = unsafe { self.alloc(layout) };
                if !block.is_null() {
                    unsafe { ptr::write_bytes(block, 0, layout.size()) };
                }
                block
            }
        }
    }

    #[inline]
    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old_class = class_of(layout.size(), layout.align());
        let new_class = class_of(new_size, layout.align());
        match (old_class, new_class) {
            // The block already has room for the new size (a class is a power of two).
            (Some(old), Some(new)) if old == new => block,
            // SAFETY: allocated behind with `layout`, and will be freed with the new size.
            (None, None) => unsafe { self.behind.realloc(block, layout, new_size) },
            _ => {
                // SAFETY: the caller guarantees `new_size` with `layout`'s alignment is a
                // valid layout; the old block holds `layout.size()` initialised bytes.
                unsafe {
                    let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
                    let moved = self.alloc(new_layout);
                    if !moved.is_null() {
                        ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                        self.dealloc(block, layout);
                    }
                    moved
                }
            }
        }
    }
}

/// The cache as the global allocator of a single-threaded guest.
#[cfg(all(
    target_arch = "wasm32",
    not(target_feature = "atomics"),
    feature = "cached-allocator"
))]
mod global {
    use super::BlockCache;
    use std::alloc::System;

    struct SingleThreaded(BlockCache<System>);

    // SAFETY: `wasm32` without the `atomics` feature has no threads: nothing can reach the
    // cache from two places at once.
    unsafe impl Sync for SingleThreaded {}

    // SAFETY: delegates every call to the cache.
    unsafe impl std::alloc::GlobalAlloc for SingleThreaded {
        #[inline]
        unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
            unsafe { self.0.alloc(layout) }
        }
        #[inline]
        unsafe fn dealloc(&self, block: *mut u8, layout: std::alloc::Layout) {
            unsafe { self.0.dealloc(block, layout) }
        }
        #[inline]
        unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
            unsafe { self.0.alloc_zeroed(layout) }
        }
        #[inline]
        unsafe fn realloc(
            &self,
            block: *mut u8,
            layout: std::alloc::Layout,
            new_size: usize,
        ) -> *mut u8 {
            unsafe { self.0.realloc(block, layout, new_size) }
        }
    }

    #[global_allocator]
    static ALLOCATOR: SingleThreaded = SingleThreaded(BlockCache::new(System));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// The system allocator, counting the blocks it has out.
    struct Counting {
        live: Cell<isize>,
    }

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            self.live.set(self.live.get() + 1);
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
            self.live.set(self.live.get() - 1);
            unsafe { System.dealloc(block, layout) }
        }
    }

    #[test]
    fn sizes_map_to_power_of_two_classes() {
        assert_eq!(class_of(1, 1), Some(0));
        assert_eq!(class_of(8, 8), Some(0));
        assert_eq!(class_of(9, 1), Some(1));
        assert_eq!(class_of(16, 4), Some(1));
        assert_eq!(class_of(17, 1), Some(2));
        assert_eq!(class_of(2048, 8), Some(CLASSES - 1));
        assert_eq!(class_of(2049, 1), None);
        assert_eq!(
            class_of(64, 16),
            None,
            "alignment past 8 bypasses the cache"
        );
        for size in 1..=MAX_CLASS_SIZE {
            let class = class_of(size, 1).unwrap();
            assert!(class_layout(class).size() >= size);
            assert!(class == 0 || class_layout(class - 1).size() < size);
        }
    }

    /// Random allocations, reallocations and frees: every live block keeps its contents
    /// (no block is handed out twice), is aligned as asked, and when all are freed the
    /// cache holds at most its bound and the rest went back behind.
    #[test]
    fn blocks_are_never_shared_and_the_cache_stays_bounded() {
        let cache = BlockCache::new(Counting { live: Cell::new(0) });
        let mut live: Vec<(*mut u8, Layout, u8)> = Vec::new();
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let check = |block: *mut u8, layout: Layout, fill: u8| {
            assert_eq!(block as usize % layout.align(), 0);
            let bytes = unsafe { std::slice::from_raw_parts(block, layout.size()) };
            assert!(
                bytes.iter().all(|&b| b == fill),
                "a live block was overwritten"
            );
        };
        for step in 0..40_000u32 {
            let roll = next();
            if live.is_empty() || roll % 3 != 0 {
                let size = match roll % 7 {
                    0 => 1 + (next() % 6000) as usize,
                    _ => 1 + (next() % 300) as usize,
                };
                let align = [1, 2, 4, 8, 16][(next() % 5) as usize];
                let layout = Layout::from_size_align(size, align).unwrap();
                let block = if step % 5 == 0 {
                    let block = unsafe { cache.alloc_zeroed(layout) };
                    check(block, layout, 0);
                    block
                } else {
                    unsafe { cache.alloc(layout) }
                };
                assert!(!block.is_null());
                let fill = step as u8;
                unsafe { ptr::write_bytes(block, fill, size) };
                live.push((block, layout, fill));
            } else {
                let at = (next() % live.len() as u64) as usize;
                let (block, layout, fill) = live.swap_remove(at);
                check(block, layout, fill);
                if roll % 2 == 0 {
                    unsafe { cache.dealloc(block, layout) };
                } else {
                    let new_size = 1 + (next() % 3000) as usize;
                    let moved = unsafe { cache.realloc(block, layout, new_size) };
                    assert!(!moved.is_null());
                    let kept = Layout::from_size_align(layout.size().min(new_size), 1).unwrap();
                    check(moved, kept, fill);
                    let layout = Layout::from_size_align(new_size, layout.align()).unwrap();
                    unsafe { ptr::write_bytes(moved, fill, new_size) };
                    live.push((moved, layout, fill));
                }
            }
            if live.len() > 3_000 {
                for (block, layout, fill) in live.drain(..) {
                    check(block, layout, fill);
                    unsafe { cache.dealloc(block, layout) };
                }
            }
        }
        for (block, layout, _) in live.drain(..) {
            unsafe { cache.dealloc(block, layout) };
        }
        let cached = cache.cached();
        for (class, &count) in cached.iter().enumerate() {
            assert!(count <= class_limit(class), "class {class} holds {count}");
        }
        // Whatever is not in the cache went back to the allocator behind.
        let held: usize = cached.iter().sum();
        assert_eq!(cache.behind.live.get(), held as isize);
        assert!(
            held > 0,
            "the cache kept nothing: the test did not reach it"
        );
    }

    #[test]
    fn a_freed_block_is_reused_for_its_class() {
        let cache = BlockCache::new(Counting { live: Cell::new(0) });
        let layout = Layout::from_size_align(40, 8).unwrap();
        let first = unsafe { cache.alloc(layout) };
        unsafe { cache.dealloc(first, layout) };
        // 33..=64 bytes is one class: the same block comes back, nothing new behind.
        let again = unsafe { cache.alloc(Layout::from_size_align(64, 1).unwrap()) };
        assert_eq!(again, first);
        assert_eq!(cache.behind.live.get(), 1);
        // Growing within the class keeps the block in place.
        let grown = unsafe { cache.realloc(again, Layout::from_size_align(64, 1).unwrap(), 50) };
        assert_eq!(grown, first);
        unsafe { cache.dealloc(grown, Layout::from_size_align(50, 1).unwrap()) };
        assert_eq!(cache.cached()[3], 1);
    }
}
