//! Faults of the machine around a process, made for real: a file size limit that makes
//! writes fail as on a full disk, files that cannot be written even by root, and a look
//! at a process's resident memory.

use std::fs::File;
use std::path::{Path, PathBuf};

use rustix::fs::IFlags;
use rustix::process::{Pid, Resource, Rlimit};

/// The resident set size of process `pid` (`VmRSS` in `/proc/<pid>/status`), in bytes;
/// `None` once the process is gone.
pub fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

/// Sets the soft `RLIMIT_FSIZE` of process `pid` (`None`: unlimited) and leaves the hard
/// limit as it is. A write past the soft limit fails with `EFBIG` (the process must ignore
/// `SIGXFSZ`, see `ServeOptions::file_size_limit`), which SQLite reports as a write error,
/// as it would on a full disk.
pub fn set_file_size_limit(pid: u32, bytes: Option<u64>) {
    let Some(process) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        panic!("{pid} is not a process id");
    };
    // The child inherited this process's hard limit; the soft one may not exceed it.
    let hard = rustix::process::getrlimit(Resource::Fsize).maximum;
    let soft = match (bytes, hard) {
        (Some(b), Some(h)) => Some(b.min(h)),
        (None, h) => h,
        (b, None) => b,
    };
    let limit = Rlimit {
        current: soft,
        maximum: hard,
    };
    if let Err(e) = rustix::process::prlimit(Some(process), Resource::Fsize, limit) {
        panic!("cannot set the file size limit of process {pid}: {e}");
    }
}

/// Marks files immutable (`chattr +i`) while it lives: no process, root included, can
/// write to them, not even through a descriptor opened before — a database file that has
/// become read-only under a running server. Dropping it makes them writable again.
pub struct ImmutableFiles {
    paths: Vec<PathBuf>,
}

impl ImmutableFiles {
    /// Fails (with the reason) where the file system or the process's capabilities do not
    /// allow the immutable flag.
    pub fn set(paths: &[&Path]) -> Result<ImmutableFiles, String> {
        let mut done = ImmutableFiles { paths: Vec::new() };
        for path in paths {
            set_immutable(path, true)?;
            done.paths.push(path.to_path_buf());
        }
        Ok(done)
    }
}

impl Drop for ImmutableFiles {
    fn drop(&mut self) {
        for path in &self.paths {
            if let Err(e) = set_immutable(path, false) {
                eprintln!("cannot make {} writable again: {e}", path.display());
            }
        }
    }
}

fn set_immutable(path: &Path, immutable: bool) -> Result<(), String> {
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut flags =
        rustix::fs::ioctl_getflags(&file).map_err(|e| format!("{}: {e}", path.display()))?;
    flags.set(IFlags::IMMUTABLE, immutable);
    rustix::fs::ioctl_setflags(&file, flags).map_err(|e| {
        format!(
            "cannot change the immutable flag of {}: {e}",
            path.display()
        )
    })
}
