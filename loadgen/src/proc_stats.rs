//! RSS and CPU time of a process, read from `/proc/<pid>/status` and `/proc/<pid>/stat`.

use serde::Serialize;

/// Clock ticks per second of the times in `/proc/<pid>/stat` (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// One reading of a process; `None` when it could not be read (gone, or not on Linux).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct ProcSample {
    pub pid: u32,
    pub rss_kib: Option<u64>,
    pub cpu_seconds: Option<f64>,
}

/// A process before and after the run.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct ProcDelta {
    pub pid: u32,
    pub before: ProcSample,
    pub after: ProcSample,
}

impl ProcDelta {
    /// CPU seconds the process spent during the run.
    pub fn cpu_seconds(&self) -> Option<f64> {
        Some(self.after.cpu_seconds? - self.before.cpu_seconds?)
    }
}

/// Bytes of RSS the processes of `bare` grew by in `later` (matched by pid), per one of
/// `count` (sockets, say); none when a reading is missing or `count` is 0.
pub fn growth_per(bare: &[ProcSample], later: &[ProcSample], count: usize) -> Option<f64> {
    if bare.is_empty() || count == 0 {
        return None;
    }
    let mut grown = 0.0;
    for b in bare {
        let l = later.iter().find(|l| l.pid == b.pid)?;
        grown += l.rss_kib?.saturating_sub(b.rss_kib?) as f64 * 1024.0;
    }
    Some(grown / count as f64)
}

pub fn sample(pid: u32) -> ProcSample {
    let read = |file: &str| std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok();
    ProcSample {
        pid,
        rss_kib: read("status").as_deref().and_then(rss_kib),
        cpu_seconds: read("stat").as_deref().and_then(cpu_seconds),
    }
}

/// `VmRSS:  1234 kB` of a status file.
fn rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// utime + stime (fields 14 and 15) of a stat file, in seconds. The command name (field 2)
/// may hold spaces and parentheses, so fields are counted after its last `)`.
fn cpu_seconds(stat: &str) -> Option<f64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SECOND)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_stat() {
        assert_eq!(rss_kib("Name:\tgateway\nVmRSS:\t   5120 kB\n"), Some(5120));
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 1 1 1";
        assert_eq!(cpu_seconds(stat), Some(3.0));
    }

    #[test]
    fn growth_per_socket_over_every_process_read() {
        let at = |pid, kib| ProcSample { pid, rss_kib: Some(kib), cpu_seconds: None };
        let bare = [at(1, 1_000), at(2, 2_000)];
        assert_eq!(growth_per(&bare, &[at(2, 2_500), at(1, 1_500), at(3, 9)], 128), Some(8_000.0));
        assert_eq!(growth_per(&bare, &[at(1, 1_500)], 128), None, "a process not read again");
        assert_eq!(growth_per(&[], &[at(1, 1)], 1), None);
    }

    #[test]
    fn reads_this_process() {
        let me = sample(std::process::id());
        assert!(me.rss_kib.is_some_and(|k| k > 0));
        assert!(me.cpu_seconds.is_some());
    }
}
