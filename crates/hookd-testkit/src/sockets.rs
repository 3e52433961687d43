//! Which TCP ports a process holds (Linux, from `/proc`), to tell which of several
//! hookd processes sent a request: a receiver records each request's peer port.

use std::collections::HashSet;

/// The local ports of the IPv4 and IPv6 TCP sockets process `pid` has open.
pub fn local_tcp_ports(pid: u32) -> HashSet<u16> {
    let inodes: HashSet<String> = match std::fs::read_dir(format!("/proc/{pid}/fd")) {
        Ok(fds) => fds
            .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
            .filter_map(|target| {
                let target = target.to_string_lossy().into_owned();
                Some(
                    target
                        .strip_prefix("socket:[")?
                        .strip_suffix(']')?
                        .to_owned(),
                )
            })
            .collect(),
        Err(e) => panic!("cannot list the files of process {pid}: {e}"),
    };
    let mut ports = HashSet::new();
    for table in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
            continue;
        };
        // Columns: sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
        for line in text.lines().skip(1) {
            let columns: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(inode)) = (columns.get(1), columns.get(9)) else {
                continue;
            };
            if !inodes.contains(*inode) {
                continue;
            }
            if let Some(port) = local
                .rsplit(':')
                .next()
                .and_then(|hex| u16::from_str_radix(hex, 16).ok())
            {
                ports.insert(port);
            }
        }
    }
    ports
}
