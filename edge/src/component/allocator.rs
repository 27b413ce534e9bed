//! The component's allocator: the default one (wasi-libc's dlmalloc), except that while pre-initializing it
//! zeroes every block it frees. Wasm linear memory never shrinks and a freed block keeps its bytes, so without
//! this a snapshot would also carry everything loading a model read and dropped (the ONNX file, its protobuf, the
//! graph before optimization: twice the weights for an fp32 model). wasmtime-wizer writes only the non-zero parts
//! of memory into the snapshot, so zeroed blocks cost nothing in the component, and a fresh instance reuses them.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, Ordering};

#[global_allocator]
static ALLOCATOR: ZeroFreedWhilePreinitializing = ZeroFreedWhilePreinitializing;

/// Set for the duration of `wizer-initialize`.
static ZERO_FREED: AtomicBool = AtomicBool::new(false);

/// Runs `f` with every block freed meanwhile zeroed first.
pub(super) fn zeroing_freed<T>(f: impl FnOnce() -> T) -> T {
    ZERO_FREED.store(true, Ordering::Relaxed);
    let result = f();
    ZERO_FREED.store(false, Ordering::Relaxed);
    result
}

struct ZeroFreedWhilePreinitializing;

/// Zeroes `len` bytes at `ptr` with volatile writes: a plain memset right before `free` is a dead store the
/// compiler removes.
///
/// # Safety
/// `ptr..ptr + len` must be writable.
unsafe fn zero(ptr: *mut u8, len: usize) {
    let head = ptr.align_offset(align_of::<u64>()).min(len);
    let words = (len - head) / size_of::<u64>();
    unsafe {
        for i in 0..head {
            ptr.add(i).write_volatile(0);
        }
        let aligned = ptr.add(head).cast::<u64>();
        for i in 0..words {
            aligned.add(i).write_volatile(0);
        }
        for i in head + words * size_of::<u64>()..len {
            ptr.add(i).write_volatile(0);
        }
    }
}

// SAFETY: every call goes to `System` with the caller's pointer and layout; zeroing writes only the `layout.size()`
// bytes the caller owned and is giving back.
// Each method is kept out of line: this crate instantiates most of its dependencies' generic code, and the
// allocator inlined into every allocation site made the component half a MB larger.
unsafe impl GlobalAlloc for ZeroFreedWhilePreinitializing {
    #[inline(never)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(layout) }
    }

    #[inline(never)]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc_zeroed(layout) }
    }

    #[inline(never)]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ZERO_FREED.load(Ordering::Relaxed) {
            unsafe { zero(ptr, layout.size()) };
        }
        unsafe { System.dealloc(ptr, layout) }
    }

    #[inline(never)]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !ZERO_FREED.load(Ordering::Relaxed) {
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // A move or a shrink in place would leave the old bytes behind: allocate, copy, zero, free.
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return std::ptr::null_mut();
        };
        let moved = unsafe { System.alloc(new_layout) };
        if !moved.is_null() {
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        moved
    }
}
