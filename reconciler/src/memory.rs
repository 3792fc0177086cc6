//! Giving freed memory back to the operating system.
//!
//! A long-lived controller's heap grows in bursts (a first listing of thousands of objects,
//! a round of status writes) and glibc's allocator keeps what was freed inside the heap, so
//! the resident size stays at the highest burst. Trimming after a burst returns the free
//! pages; a pod's memory is then what the controller holds, not what it once held.

/// Tunes the allocator for a process that runs for months: two heap arenas instead of
/// glibc's eight per core, so that memory freed by one thread's burst is reused by the next
/// instead of sitting in another arena. Call before any thread starts.
pub fn long_lived() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's allocator settings; called before other threads.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Returns free heap pages to the system. Called after a burst (a reload of the
/// definitions, a round that wrote statuses), not in a loop: a trim walks the whole heap
/// (about a millisecond for 100 MiB).
pub fn give_back() {
    trim();
}

/// Frees `value` and gives the free pages back on another thread, while the caller goes on.
pub fn free_beside<T: Send + 'static>(value: T) -> Freeing {
    Freeing(std::thread::spawn(move || {
        drop(value);
        give_back();
    }))
}

/// Memory being freed on another thread.
pub struct Freeing(std::thread::JoinHandle<()>);

impl Freeing {
    /// Waits until the memory is freed.
    pub fn join(self) {
        // Dropping cannot fail but by a panic in a destructor, which has been reported.
        let _ = self.0.join();
    }
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
