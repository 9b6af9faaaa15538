//! The open-files limit: a gateway holds one descriptor per socket, so every process raises
//! its soft limit to the hard one at start (the hard limit itself is the machine's to set).

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Raises the soft limit of open files to the hard limit; returns the limit now in force.
pub fn raise_open_files() -> u64 {
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(_) => soft,
        },
        Err(_) => 0,
    }
}
