//! Open files: a request in flight holds a connection, and a connection a file descriptor.
//! At start the soft `RLIMIT_NOFILE` is raised to the hard limit (as the OS allows any
//! process to); what is left after the files the run itself needs bounds the requests in
//! flight, all buckets together, warm-up connections included.

/// Descriptors kept for everything but the requests: stdio, the input, the results file and
/// its temporary, the record, the lock, the runtime's own (epoll, eventfd, signals), the
/// resolver's sockets, the metadata service, the simulator's listener, and one look-up
/// connection per region that may be open beside the writes' connections.
pub const RESERVED_FILES: u64 = 64;

/// Raises the soft limit on open files to the hard limit; the soft limit in force after.
pub fn raise_open_files_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return u64::MAX;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
    }
    as_count(limit.rlim_cur)
}

/// The soft limit on open files in force now (`u64::MAX`: none).
pub fn open_files_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct passed to it.
    match unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } {
        0 => as_count(limit.rlim_cur),
        _ => u64::MAX,
    }
}

fn as_count(limit: libc::rlim_t) -> u64 {
    match limit == libc::RLIM_INFINITY {
        true => u64::MAX,
        false => limit,
    }
}

/// The most requests in flight that `open_files` descriptors allow, all buckets together:
/// what is left after [`RESERVED_FILES`], halved for the in-process simulator (whose end of
/// each connection is a descriptor of this process too); at least 1.
pub fn max_in_flight(open_files: u64, simulate: bool) -> usize {
    let per_request = if simulate { 2 } else { 1 };
    let left = open_files.saturating_sub(RESERVED_FILES) / per_request;
    usize::try_from(left).unwrap_or(usize::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_files_a_run_needs_are_kept_and_the_simulator_counts_twice() {
        assert_eq!(max_in_flight(128, false), 64);
        assert_eq!(max_in_flight(128, true), 32);
        assert_eq!(max_in_flight(10, false), 1, "never none");
        assert!(max_in_flight(u64::MAX, false) > 1 << 40, "no limit, no cap");
    }
}
