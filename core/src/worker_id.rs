//! Readable worker identities (`host-pid`), shown to users and in logs.
//!
//! A container's main process is PID 1 on the same hostname after every restart, so there the
//! name gets a random part (`host-1.3f9a`): a restarted processor is a new worker, and a job's
//! timeline can tell the incarnation that was lost from the one that finished it.

pub fn default_worker_id() -> String {
    worker_id(&host_name(), std::process::id(), incarnation())
}

/// This machine's (or container's) host name, `worker` if it has none.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "worker".to_string())
}

fn worker_id(host: &str, pid: u32, incarnation: u16) -> String {
    if pid == 1 {
        format!("{host}-1.{incarnation:04x}")
    } else {
        format!("{host}-{pid}")
    }
}

/// A number that differs between two starts of the same process image.
fn incarnation() -> u16 {
    let mut bytes = [0u8; 2];
    if std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes)).is_ok() {
        return u16::from_le_bytes(bytes);
    }
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    (nanos ^ (nanos >> 16)) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_pid_and_an_incarnation_for_pid_1() {
        assert_eq!(worker_id("box", 4242, 7), "box-4242");
        assert_eq!(worker_id("97d92226fce0", 1, 0x3f9a), "97d92226fce0-1.3f9a");
        assert_ne!(worker_id("c", 1, 1), worker_id("c", 1, 2));
    }
}
