//! Why freed image memory stays in the process: a job allocates tens of megabytes at once (a
//! 20 MP JPEG's DCT coefficients are 61 MB), and glibc hands allocations that large straight
//! back to the kernel when they are freed. The next job then takes every page fresh: a page
//! fault and a zeroed page per 4 KiB, which measured as much time as decoding the JPEG (T3 on a
//! 20 MP photo: 83 of 220 ms). A worker runs job after job, so [`keep_freed_memory`] tells the
//! allocator to keep such blocks for reuse instead. Peak memory does not change; what changes is
//! that the process stays at its peak between jobs, up to [`KEPT_BYTES`] per allocator arena.

/// Allocations up to this size come from (and return to) the process's heap; the heap's free
/// top is given back to the kernel only beyond it.
pub const KEPT_BYTES: usize = 256 << 20;

/// Keep freed image memory for the next job (glibc's M_MMAP_THRESHOLD and M_TRIM_THRESHOLD at
/// [`KEPT_BYTES`]). Call once at start-up, before jobs run; returns whether the allocator took
/// the setting (other C libraries: nothing to do, `false`).
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::raw::c_int;
        extern "C" {
            fn mallopt(param: c_int, value: c_int) -> c_int;
        }
        const M_TRIM_THRESHOLD: c_int = -1;
        const M_MMAP_THRESHOLD: c_int = -3;
        // SAFETY: mallopt only sets an allocator parameter; this one and its value are valid
        // for glibc, and it may be called at any time.
        let mmap = unsafe { mallopt(M_MMAP_THRESHOLD, KEPT_BYTES as c_int) };
        // SAFETY: as above.
        let trim = unsafe { mallopt(M_TRIM_THRESHOLD, KEPT_BYTES as c_int) };
        mmap == 1 && trim == 1
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_takes_the_setting() {
        assert!(super::keep_freed_memory());
    }
}
