//! Giving freed memory back to the operating system.
//!
//! A long-lived controller's heap grows in bursts (a first listing of thousands of objects,
//! a round of status writes) and glibc's allocator keeps what was freed inside the heap, so
//! the resident size stays at the highest burst. Trimming after a burst returns the free
//! pages; a pod's memory is then what the controller holds, not what it once held.

/// Returns free heap pages to the system. Called after a burst (a reload of the
/// definitions, a round that wrote statuses), not in a loop: a trim walks the whole heap
/// (about a millisecond for 100 MiB).
pub fn give_back() {
    trim();
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only releases free memory of glibc's own heap.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
