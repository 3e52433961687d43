//! What the operating system tells about this process and machine: CPU time of hookd's
//! threads (and of a local PostgreSQL server's processes), resident memory, and the
//! machine's facts. Linux `/proc` only; elsewhere the figures are simply missing.

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
    /// All of hookd's threads (every in-process node's).
    pub(crate) seconds: f64,
    /// The SQLite writer thread alone; `None` on PostgreSQL.
    pub(crate) writer_seconds: Option<f64>,
    /// The PostgreSQL server's processes (another program, so never in `seconds`);
    /// `None` on SQLite or when the server's processes are not visible here.
    pub(crate) server_seconds: Option<f64>,
}

/// What [`CpuUse`] is computed from: hookd's threads, and the database server's
/// processes if there is one to read.
#[derive(Clone, Debug)]
pub(crate) struct CpuSnapshot {
    threads: ThreadCpu,
    sqlite: bool,
    server_ticks: Option<u64>,
}

impl CpuSnapshot {
    /// `postmaster`: the local PostgreSQL server to count as well; `sqlite`: whether the
    /// store is SQLite (whose writer thread is shown apart).
    pub(crate) fn take(sqlite: bool, postmaster: Option<u32>) -> CpuSnapshot {
        CpuSnapshot {
            threads: ThreadCpu::snapshot(),
            sqlite,
            server_ticks: postmaster.and_then(process_tree_ticks),
        }
    }

    pub(crate) fn since(&self, earlier: &CpuSnapshot) -> CpuUse {
        let (seconds, writer_seconds) = self.threads.since(&earlier.threads);
        let server_seconds = match (self.server_ticks, earlier.server_ticks) {
            (Some(now), Some(before)) => Some(now.saturating_sub(before) as f64 / TICKS_PER_SECOND),
            _ => None,
        };
        CpuUse {
            seconds,
            writer_seconds: self.sqlite.then_some(writer_seconds),
            server_seconds,
        }
    }
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

    /// CPU seconds hookd's threads used since `earlier`, all and the SQLite writer's.
    /// Threads that started since count in full; threads that ended since are lost, which
    /// is why hookd's runtime keeps its idle threads alive for the whole run.
    fn since(&self, earlier: &ThreadCpu) -> (f64, f64) {
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
        (
            all as f64 / TICKS_PER_SECOND,
            writer as f64 / TICKS_PER_SECOND,
        )
    }
}

/// The thread's name and its user + system ticks, from one `stat` line.
fn parse_stat(line: &str) -> Option<(&str, u64)> {
    parse_stat_fields(line).map(|stat| (stat.name, stat.ticks))
}

/// The fields of a `/proc/…/stat` line this module reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stat<'a> {
    name: &'a str,
    parent: u32,
    /// User + system ticks of the task itself.
    ticks: u64,
    /// User + system ticks of its children that ended and were waited for.
    children_ticks: u64,
}

/// The name sits in parentheses and may itself hold spaces or parentheses, so fields are
/// counted from the last `)`.
fn parse_stat_fields(line: &str) -> Option<Stat<'_>> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let name = line.get(open + 1..close)?;
    // After the name: state (field 3), ppid (4) … utime (14), stime (15), cutime (16),
    // cstime (17).
    let fields: Vec<&str> = line.get(close + 1..)?.split_whitespace().take(15).collect();
    let number = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let parent = u32::try_from(number(1)?).ok()?;
    let ticks = number(11)? + number(12)?;
    let children_ticks = number(13).unwrap_or(0) + number(14).unwrap_or(0);
    Some(Stat {
        name,
        parent,
        ticks,
        children_ticks,
    })
}

/// The postmaster of a local PostgreSQL backend (a session's `pg_backend_pid()`): its
/// parent, if both are processes named `postgres` here.
pub(crate) fn postgres_postmaster_of(backend_pid: u32) -> Option<u32> {
    let backend = std::fs::read_to_string(format!("/proc/{backend_pid}/stat")).ok()?;
    let backend = parse_stat_fields(&backend)?;
    if backend.name != "postgres" {
        return None;
    }
    let parent = std::fs::read_to_string(format!("/proc/{}/stat", backend.parent)).ok()?;
    (parse_stat_fields(&parent)?.name == "postgres").then_some(backend.parent)
}

/// CPU ticks used by a process and all its children so far: the process itself, its
/// ended children (which the kernel adds to it once it has waited for them, as the
/// postmaster does), and each live child with its own ended children. A child that ends
/// between two readings is counted once either way.
pub(crate) fn process_tree_ticks(root: u32) -> Option<u64> {
    let mut total = 0;
    let entries = std::fs::read_dir("/proc").ok()?;
    // Children first: one that ends meanwhile moves into the root's figure, read last,
    // and is then counted twice rather than lost (a few ticks at most).
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(line) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Some(stat) = parse_stat_fields(&line)
            && stat.parent == root
            && pid != root
        {
            total += stat.ticks + stat.children_ticks;
        }
    }
    let root = std::fs::read_to_string(format!("/proc/{root}/stat")).ok()?;
    let root = parse_stat_fields(&root)?;
    Some(total + root.ticks + root.children_ticks)
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
    /// The store: SQLite and the filesystem its files live on (fsync cost depends on
    /// it), or the PostgreSQL server, its version and durability settings.
    pub database: String,
}

impl MachineFacts {
    pub(crate) fn gather(hookd_version: &str, database: &str) -> MachineFacts {
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
            database: database.to_owned(),
        }
    }
}

/// The type of the filesystem holding `dir`: the longest mount point that contains it.
pub(crate) fn filesystem_of(dir: &Path) -> Option<String> {
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
        let postgres = "2210 (postgres) S 1 2210 2210 0 -1 4194304 30183 1471311 0 126 10 99 2742 1114 20 0 1 0";
        assert_eq!(
            parse_stat_fields(postgres),
            Some(Stat {
                name: "postgres",
                parent: 1,
                ticks: 109,
                children_ticks: 3856,
            })
        );
    }

    #[test]
    fn this_process_tree_has_ticks_and_no_postmaster() {
        if Path::new("/proc/self/stat").exists() {
            let me = std::process::id();
            assert!(process_tree_ticks(me).is_some());
            assert_eq!(postgres_postmaster_of(me), None);
        }
    }

    #[test]
    fn this_process_has_a_resident_size() {
        if Path::new("/proc/self/status").exists() {
            assert!(rss_bytes().is_some_and(|b| b > 0));
            assert!(peak_rss_bytes().is_some_and(|b| b > 0));
        }
    }
}
