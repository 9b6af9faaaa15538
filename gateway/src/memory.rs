//! How the gateway's process uses the allocator. Each password hash (Argon2id, 19 MiB) takes
//! one large block for a few tens of milliseconds. glibc serves a block that large with its
//! own mapping, but after the first one is freed it raises its mapping threshold above it
//! (the "dynamic mmap threshold"), and from then on keeps such blocks in its arenas, one set
//! per thread of the blocking pool: 100 sign-ups left a gateway at 1.7 GB of resident memory
//! that it never gave back (30 MB with the threshold fixed). Fixing the threshold keeps every
//! block over it a mapping of its own, returned to the system when freed.

/// Blocks of this size and over are mapped apart and unmapped when freed (glibc's default
/// before it adapts: 128 KiB; raised here so that buffers of sockets and frames stay in the
/// heap).
const MMAP_THRESHOLD_BYTES: i32 = 4 * 1024 * 1024;

/// Fixes glibc's mmap threshold (which also stops it adapting). Call once at start, before
/// the runtime starts threads. Elsewhere than glibc, does nothing.
pub fn return_large_blocks_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's parameters; it is called once, before any
    // other thread exists, with a valid parameter and value.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
    }
}
