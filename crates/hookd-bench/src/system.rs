//! What the operating system tells about this process and machine: CPU time of hookd's
//! threads, resident memory, and the machine's facts. Linux `/proc` only; elsewhere the
//! figures are simply missing.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

/// Threads whose name starts with this are hookd's (its runtime and the SQLite writer).
pub(crate) const HOOKD_THREAD_PREFIX: &str = "hookd";

/// `/proc` counts CPU time in clock ticks of 1/100 s (`USER_HZ`) on every Linux platform
/// that matters here.
const TICKS_PER_SECOND: f64 = 100.0;

/// The SQLite writer thread (`hookd-sqlite-writer`, cut to 15 characters by Linux):
/// every write of the store runs on it, so it alone can be the bottleneck.
const WRITER_THREAD_PREFIX: &str = "hookd-sqlite";

/// CPU ticks used so far by each of hookd's threads, by thread id, with its name.
#[derive(Clone, Debug, Default)]
pub(crate) struct ThreadCpu(BTreeMap<u32, (String, u64)>);

/// hookd's CPU time over a stretch of the run.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CpuUse {
    /// All of hookd's threads.
    pub(crate) seconds: f64,
    /// The SQLite writer thread alone.
    pub(crate) writer_seconds: f64,
}

impl ThreadCpu {
    /// Reads `/proc/self/task/*/stat` for threads named `hookd…`, except the main
    /// thread (which carries the binary's name but runs the benchmark, not hookd).
    pub(crate) fn snapshot() -> ThreadCpu {
        let main = std::process::id();
        let mut ticks = BTreeMap::new();
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return ThreadCpu(ticks);
        };
        for task in tasks.flatten() {
            let Some(tid) = task
                .file_name()
                .to_str()
                .and_then(|t| t.parse::<u32>().ok())
            else {
                continue;
            };
            if tid == main {
                continue;
            }
            let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
                continue;
            };
            if let Some((name, used)) = parse_stat(&stat)
                && name.starts_with(HOOKD_THREAD_PREFIX)
            {
                ticks.insert(tid, (name.to_owned(), used));
            }
        }
        ThreadCpu(ticks)
    }

    /// CPU seconds hookd's threads used since `earlier`. Threads that started since count
    /// in full; threads that ended since are lost, which is why hookd's runtime keeps its
    /// idle threads alive for the whole run.
    pub(crate) fn since(&self, earlier: &ThreadCpu) -> CpuUse {
        let mut all = 0;
        let mut writer = 0;
        for (tid, (name, now)) in &self.0 {
            let before = earlier.0.get(tid).map_or(0, |(_, ticks)| *ticks);
            let used = now.saturating_sub(before);
            all += used;
            if name.starts_with(WRITER_THREAD_PREFIX) {
                writer += used;
            }
        }
        CpuUse {
            seconds: all as f64 / TICKS_PER_SECOND,
            writer_seconds: writer as f64 / TICKS_PER_SECOND,
        }
    }
}

/// The thread's name and its user + system ticks, from one `stat` line. The name sits in
/// parentheses and may itself hold spaces or parentheses, so fields are counted from the
/// last `)`.
fn parse_stat(line: &str) -> Option<(&str, u64)> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let name = line.get(open + 1..close)?;
    // After the name: state (field 3) … utime (14) and stime (15).
    let mut fields = line.get(close + 1..)?.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((name, user + system))
}

/// Resident memory of the whole process now (`VmRSS`), in bytes.
pub(crate) fn rss_bytes() -> Option<u64> {
    status_kib("VmRSS:").map(|k| k * 1024)
}

/// The most resident memory of the whole process since start or the last
/// [`reset_peak_rss`] (`VmHWM`), in bytes.
pub(crate) fn peak_rss_bytes() -> Option<u64> {
    status_kib("VmHWM:").map(|k| k * 1024)
}

/// Starts the peak (`VmHWM`) over from the current RSS (Linux 4.0 and later); false when
/// the kernel does not allow it, so the peak is since process start.
pub(crate) fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn status_kib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// What the figures were measured on.
#[derive(Clone, Debug, Serialize)]
pub struct MachineFacts {
    /// Cores this process may use.
    pub cores: usize,
    pub cpu_model: String,
    pub memory_total_mb: Option<u64>,
    pub kernel: Option<String>,
    /// `release` or `debug`: how this binary was built.
    pub build_profile: &'static str,
    pub hookd_version: String,
    /// The store and the filesystem its files live on (fsync cost depends on it).
    pub database: String,
}

impl MachineFacts {
    pub(crate) fn gather(hookd_version: &str, database_dir: &Path) -> MachineFacts {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown".to_owned(), |(_, m)| m.trim().to_owned());
        let memory_total_mb = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|kib| kib.parse::<u64>().ok())
            })
            .map(|kib| kib / 1024);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .map(|k| k.trim().to_owned());
        let filesystem = filesystem_of(database_dir).unwrap_or_else(|| "unknown".to_owned());
        MachineFacts {
            cores: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            cpu_model,
            memory_total_mb,
            kernel,
            build_profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            hookd_version: hookd_version.to_owned(),
            database: format!(
                "SQLite (WAL, synchronous=FULL) on {filesystem}, under {}",
                database_dir.display()
            ),
        }
    }
}

/// The type of the filesystem holding `dir`: the longest mount point that contains it.
fn filesystem_of(dir: &Path) -> Option<String> {
    let dir = dir.canonicalize().ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let _device = fields.next()?;
            let mount_point = fields.next()?;
            let fs_type = fields.next()?;
            dir.starts_with(mount_point)
                .then(|| (mount_point.len(), fs_type.to_owned()))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, fs_type)| fs_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_names_parse() {
        let line = "4242 (hookd-rt) S 1 2 3 4 5 6 7 8 9 10 150 25 0 0 20 0 4 0 1 2 3";
        assert_eq!(parse_stat(line), Some(("hookd-rt", 175)));
        let odd = "7 (a) b (c) R 1 2 3 4 5 6 7 8 9 10 1 2 0";
        assert_eq!(parse_stat(odd), Some(("a) b (c", 3)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_has_a_resident_size() {
        if Path::new("/proc/self/status").exists() {
            assert!(rss_bytes().is_some_and(|b| b > 0));
            assert!(peak_rss_bytes().is_some_and(|b| b > 0));
        }
    }
}
