//! CPU, memory, disk and network, sampled off the request path.
//!
//! [`SystemSampler::sample`] does blocking syscalls and reads `/proc`; the
//! health actor runs it with `tokio::task::spawn_blocking` on its own
//! interval and caches the result, so neither a request nor the health
//! report ever waits for it (the original blocked the event loop for 1 s).
//! CPU use is measured between two consecutive samples, so the first sample
//! has none.

use serde::Serialize;
use std::time::SystemTime;
use sysinfo::{Disks, Networks, System};

/// One sample of the machine's resources.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SystemSample {
    /// CPU use since the previous sample, 0–100; `None` on the first.
    pub cpu_percent: Option<f64>,
    /// Logical CPUs.
    pub cpu_count: usize,
    /// Memory in use, 0–100.
    pub memory_percent: f64,
    /// Memory available, GiB.
    pub memory_available_gb: f64,
    /// Memory in total, GiB.
    pub memory_total_gb: f64,
    /// Disk space in use over all mounted disks, 0–100.
    pub disk_percent: f64,
    /// Disk space free, GiB.
    pub disk_free_gb: f64,
    /// Disk space in total, GiB.
    pub disk_total_gb: f64,
    /// Bytes sent on all interfaces since boot.
    pub bytes_sent: u64,
    /// Bytes received on all interfaces since boot.
    pub bytes_recv: u64,
    /// Packets sent since boot.
    pub packets_sent: u64,
    /// Packets received since boot.
    pub packets_recv: u64,
    /// When it was taken.
    #[serde(with = "crate::clock::rfc3339")]
    pub taken_at: SystemTime,
}

/// The seed's per-resource status: warning from 80 %, critical from 95 %.
pub fn resource_status(percent: Option<f64>) -> &'static str {
    match percent {
        None => "unknown",
        Some(p) if p >= 95.0 => "critical",
        Some(p) if p >= 80.0 => "warning",
        Some(_) => "healthy",
    }
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// Where the health actor's resource samples come from: sysinfo by default
/// ([`SystemSampler`]); tests and embedders can supply fixed or their own
/// figures (`SeawallBuilder::system_sampler`), so a score never depends on
/// the machine the test runs on.
pub trait SampleSource: Send + 'static {
    /// Takes one sample. Runs on tokio's blocking pool, never on a worker.
    fn sample(&mut self) -> SystemSample;
}

impl SampleSource for SystemSampler {
    fn sample(&mut self) -> SystemSample {
        SystemSampler::sample(self)
    }
}

/// Any closure that produces samples is a source.
impl<F: FnMut() -> SystemSample + Send + 'static> SampleSource for F {
    fn sample(&mut self) -> SystemSample {
        self()
    }
}

/// Keeps sysinfo's handles between samples (CPU use needs the previous one).
pub struct SystemSampler {
    system: System,
    disks: Disks,
    networks: Networks,
    primed: bool,
}

impl Default for SystemSampler {
    fn default() -> Self {
        Self::new()
    }
}

impl SystemSampler {
    /// A sampler with nothing measured yet.
    pub fn new() -> Self {
        Self {
            system: System::new(),
            disks: Disks::new_with_refreshed_list(),
            networks: Networks::new_with_refreshed_list(),
            primed: false,
        }
    }

    /// Takes one sample. Blocking: call it from a blocking task.
    pub fn sample(&mut self) -> SystemSample {
        self.system.refresh_cpu_usage();
        self.system.refresh_memory();
        self.disks.refresh(true);
        self.networks.refresh(true);
        let cpu_percent = self
            .primed
            .then(|| f64::from(self.system.global_cpu_usage()));
        self.primed = true;
        let total = self.system.total_memory() as f64;
        let available = self.system.available_memory() as f64;
        let (disk_total, disk_free) = self.disks.iter().fold((0u64, 0u64), |(t, f), d| {
            (t + d.total_space(), f + d.available_space())
        });
        let (mut sent, mut recv, mut psent, mut precv) = (0, 0, 0, 0);
        for data in self.networks.list().values() {
            sent += data.total_transmitted();
            recv += data.total_received();
            psent += data.total_packets_transmitted();
            precv += data.total_packets_received();
        }
        SystemSample {
            cpu_percent,
            cpu_count: self.system.cpus().len(),
            memory_percent: percent(total - available, total),
            memory_available_gb: available / GIB,
            memory_total_gb: total / GIB,
            disk_percent: percent((disk_total - disk_free) as f64, disk_total as f64),
            disk_free_gb: disk_free as f64 / GIB,
            disk_total_gb: disk_total as f64 / GIB,
            bytes_sent: sent,
            bytes_recv: recv,
            packets_sent: psent,
            packets_recv: precv,
            taken_at: SystemTime::now(),
        }
    }
}

fn percent(used: f64, total: f64) -> f64 {
    if total > 0.0 {
        (100.0 * used / total).clamp(0.0, 100.0)
    } else {
        0.0
    }
}
