//! The allocator's one tunable kwatch sets: large blocks always come from their own mappings.
//!
//! glibc's malloc maps blocks of 128 KiB and more on their own and unmaps them when freed, but raises that
//! threshold to the size of the largest block freed (up to 32 MiB). A snapshot's vector is one such block (19 MiB
//! at 100,000 sockets): after the first is freed, the next ones come from the heap, whose freed space stays
//! resident. The live view and the exporter hold one snapshot while taking the next, so their RSS grew by a
//! snapshot or two over their heap in use (the exporter at 100,000 sockets: 65 MiB resident for ~40 in use).
//! Fixing the threshold keeps every block of 4 MiB and more in a mapping of its own, returned when freed; smaller
//! ones (the JSON writer's 2.4 MiB chunks, reused from the heap) stay where a new mapping would cost page faults.
//! A fixed threshold also fixes the trim threshold, at 128 KiB: every chunk the writers freed was given back and
//! faulted in again (`--once --json` at 100,000 connections: 1.35 s of CPU instead of 1.28). Up to 8 MiB of free
//! heap top is kept instead (1.28 s, and 59 MiB peak against 72 before these settings).

/// Blocks of this size and more (a snapshot of 20,000 sockets or more) are mapped on their own and returned to the kernel when freed.
const MMAP_THRESHOLD: i32 = 4 << 20;

/// Free space at the top of a heap kept for reuse rather than given back.
const TRIM_THRESHOLD: i32 = 8 << 20;

/// Sets both thresholds (glibc only; elsewhere the allocator's own policy stands). Call once at start.
pub fn return_large_blocks() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes the allocator's parameters; it takes no pointers.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

/// Returns the heap's free memory to the kernel, in every arena and not only at the top (glibc's `malloc_trim`;
/// elsewhere nothing). For the moment a large part of what a snapshot needs was freed while the rest of it is
/// still to come: freed space in the middle of the heap otherwise stays resident until reused.
pub fn give_back_freed() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory of the allocator's own arenas; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}
