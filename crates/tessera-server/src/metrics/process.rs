//! Process metrics, read from Linux's `/proc/self` at scrape time: CPU seconds, resident and
//! virtual memory, open and allowed file descriptors, threads, start time. The series are the
//! standard `process_*` ones (see [`super::PROCESS_CPU_SECONDS`] and the names after it).
//!
//! A few files read per scrape rather than a dependency: the crates that do this pull in
//! platform bindings (and, for macOS, a build-time bindgen) for five numbers. Elsewhere than
//! Linux the series are simply absent.

use std::sync::OnceLock;

use super::{
    PROCESS_CPU_SECONDS, PROCESS_MAX_FDS, PROCESS_OPEN_FDS, PROCESS_RESIDENT_MEMORY,
    PROCESS_START_TIME, PROCESS_THREADS, PROCESS_VIRTUAL_MEMORY,
};

/// `# HELP` text for the process series.
pub(super) fn describe() {
    use metrics::{describe_gauge, Unit};
    describe_gauge!(
        PROCESS_CPU_SECONDS,
        Unit::Seconds,
        "Total user and system CPU time spent in seconds."
    );
    describe_gauge!(
        PROCESS_RESIDENT_MEMORY,
        Unit::Bytes,
        "Resident memory size in bytes."
    );
    describe_gauge!(
        PROCESS_VIRTUAL_MEMORY,
        Unit::Bytes,
        "Virtual memory size in bytes."
    );
    describe_gauge!(PROCESS_OPEN_FDS, "Number of open file descriptors.");
    describe_gauge!(PROCESS_MAX_FDS, "Maximum number of open file descriptors.");
    describe_gauge!(PROCESS_THREADS, "Number of OS threads in the process.");
    describe_gauge!(
        PROCESS_START_TIME,
        Unit::Seconds,
        "Start time of the process since unix epoch in seconds."
    );
}

/// The numbers of one reading (each `None` where it could not be read).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Reading {
    /// User + system CPU seconds.
    pub cpu_seconds: Option<f64>,
    /// Resident memory, bytes.
    pub resident_bytes: Option<u64>,
    /// Virtual memory, bytes.
    pub virtual_bytes: Option<u64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// The soft open-file limit.
    pub max_fds: Option<u64>,
    /// Threads.
    pub threads: Option<u64>,
    /// Start time, unix seconds.
    pub start_time: Option<f64>,
}

/// Read this process's numbers now.
pub fn read() -> Reading {
    let (ticks, page) = units();
    let mut r = Reading::default();
    if let Some(stat) = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| Stat::parse(&s))
    {
        r.cpu_seconds = Some((stat.utime + stat.stime) as f64 / ticks as f64);
        r.resident_bytes = Some(stat.rss_pages.saturating_mul(page));
        r.virtual_bytes = Some(stat.vsize);
        r.threads = Some(stat.threads);
        r.start_time = boot_time().map(|b| b as f64 + stat.start_ticks as f64 / ticks as f64);
    }
    r.open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as u64);
    r.max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| max_open_files(&t));
    r
}

/// Set the process gauges from a fresh [`read`].
pub(crate) fn observe() {
    let r = read();
    let set = |name: &'static str, v: Option<f64>| {
        if let Some(v) = v {
            metrics::gauge!(name).set(v);
        }
    };
    set(PROCESS_CPU_SECONDS, r.cpu_seconds);
    set(PROCESS_RESIDENT_MEMORY, r.resident_bytes.map(|v| v as f64));
    set(PROCESS_VIRTUAL_MEMORY, r.virtual_bytes.map(|v| v as f64));
    set(PROCESS_OPEN_FDS, r.open_fds.map(|v| v as f64));
    set(PROCESS_MAX_FDS, r.max_fds.map(|v| v as f64));
    set(PROCESS_THREADS, r.threads.map(|v| v as f64));
    set(PROCESS_START_TIME, r.start_time);
}

/// The fields of `/proc/self/stat` used here (proc(5)).
#[derive(Debug, PartialEq)]
struct Stat {
    utime: u64,
    stime: u64,
    threads: u64,
    start_ticks: u64,
    vsize: u64,
    rss_pages: u64,
}

impl Stat {
    fn parse(text: &str) -> Option<Stat> {
        // The command name (field 2) is in parentheses and may hold spaces or parentheses:
        // the fields are counted from after the last `)`, where field 3 (the state) starts.
        let rest = &text[text.rfind(')')? + 1..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
        Some(Stat {
            utime: field(14)?,
            stime: field(15)?,
            threads: field(20)?,
            start_ticks: field(22)?,
            vsize: field(23)?,
            rss_pages: field(24)?,
        })
    }
}

/// Clock ticks per second and the page size, from the auxiliary vector the kernel gave the
/// process (`AT_CLKTCK`, `AT_PAGESZ`; what `sysconf` reads); 100 and 4096 if it cannot be read.
fn units() -> (u64, u64) {
    static UNITS: OnceLock<(u64, u64)> = OnceLock::new();
    *UNITS.get_or_init(|| {
        let auxv = std::fs::read("/proc/self/auxv").unwrap_or_default();
        let (ticks, page) = parse_auxv(&auxv);
        (
            ticks.filter(|t| *t > 0).unwrap_or(100),
            page.unwrap_or(4096),
        )
    })
}

const AT_PAGESZ: u64 = 6;
const AT_CLKTCK: u64 = 17;

/// `(AT_CLKTCK, AT_PAGESZ)` from an auxiliary vector: pairs of native words.
fn parse_auxv(bytes: &[u8]) -> (Option<u64>, Option<u64>) {
    const W: usize = std::mem::size_of::<usize>();
    let word = |c: &[u8]| -> Option<u64> {
        let a: [u8; W] = c.try_into().ok()?;
        Some(usize::from_ne_bytes(a) as u64)
    };
    let (mut ticks, mut page) = (None, None);
    for pair in bytes.chunks_exact(2 * W) {
        match (word(&pair[..W]), word(&pair[W..])) {
            (Some(AT_CLKTCK), v) => ticks = v,
            (Some(AT_PAGESZ), v) => page = v,
            _ => {}
        }
    }
    (ticks, page)
}

/// The boot time, unix seconds (`btime` in `/proc/stat`), read once.
fn boot_time() -> Option<u64> {
    static BOOT: OnceLock<Option<u64>> = OnceLock::new();
    *BOOT.get_or_init(|| {
        std::fs::read_to_string("/proc/stat").ok().and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse().ok())
        })
    })
}

/// The soft `Max open files` of `/proc/self/limits`.
fn max_open_files(limits: &str) -> Option<u64> {
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let line = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 500 0 0 0 \
                    250 50 0 0 20 0 7 0 123456 987654321 2048 18446744073709551615 1 2 3 4 5";
        assert_eq!(
            Stat::parse(line),
            Some(Stat {
                utime: 250,
                stime: 50,
                threads: 7,
                start_ticks: 123456,
                vsize: 987654321,
                rss_pages: 2048,
            })
        );
        assert_eq!(Stat::parse("garbage"), None);
    }

    #[test]
    fn auxv_and_limits_parse() {
        let mut v = Vec::new();
        for (k, val) in [(33usize, 1usize), (6, 16384), (17, 250), (0, 0)] {
            v.extend_from_slice(&k.to_ne_bytes());
            v.extend_from_slice(&val.to_ne_bytes());
        }
        assert_eq!(parse_auxv(&v), (Some(250), Some(16384)));
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 1048576              files\n";
        assert_eq!(max_open_files(limits), Some(1024));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_can_be_read() {
        let r = read();
        assert!(r.cpu_seconds.is_some_and(|c| c >= 0.0));
        assert!(r.resident_bytes.is_some_and(|b| b > 0));
        assert!(r.open_fds.is_some_and(|n| n >= 3));
        assert!(r.threads.is_some_and(|n| n >= 1));
        assert!(r.start_time.is_some_and(|t| t > 1.5e9));
    }
}
