//! Where a benchmark's CPU goes: user + system time of named processes over a window,
//! read from `/proc/<pid>/stat`. A figure per operation (µs of CPU per command) moves far
//! less with other load on the machine than a rate does, so it is what tuning compares.

use std::time::Instant;

/// Clock ticks per second of `/proc/<pid>/stat` (`getconf CLK_TCK`; 100 on Linux x86).
fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// CPU seconds (user + system) a process has used so far, if it is there.
fn cpu_seconds(pid: u32, ticks: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks)
}

/// The pid of the oldest process running `name` (e.g. `mariadbd`), if any.
pub(crate) fn pid_of(name: &str) -> Option<u32> {
    let out = std::process::Command::new("pgrep")
        .args(["-o", "-x", name])
        .output()
        .ok()?;
    String::from_utf8(out.stdout).ok()?.trim().parse().ok()
}

/// Watches a few processes; [`Meter::stop`] gives their CPU use since [`Meter::start`].
pub(crate) struct Meter {
    ticks: f64,
    started: Instant,
    at_start: Vec<(&'static str, u32, f64)>,
}

/// One process's share of a window.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct CpuUse {
    pub(crate) process: &'static str,
    /// CPU seconds used per second of wall time (1.0 = one core busy).
    pub(crate) cores: f64,
    pub(crate) seconds: f64,
}

impl Meter {
    pub(crate) fn start(processes: &[(&'static str, Option<u32>)]) -> Self {
        let ticks = ticks_per_second();
        let at_start = processes
            .iter()
            .filter_map(|&(name, pid)| {
                let pid = pid?;
                Some((name, pid, cpu_seconds(pid, ticks)?))
            })
            .collect();
        Self {
            ticks,
            started: Instant::now(),
            at_start,
        }
    }

    pub(crate) fn stop(self) -> Vec<CpuUse> {
        let wall = self.started.elapsed().as_secs_f64().max(1e-9);
        self.at_start
            .into_iter()
            .filter_map(|(process, pid, before)| {
                let seconds = cpu_seconds(pid, self.ticks)? - before;
                Some(CpuUse {
                    process,
                    cores: seconds / wall,
                    seconds,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_loop_shows_up_as_cpu_of_this_process() {
        let me = std::process::id();
        let meter = Meter::start(&[("self", Some(me)), ("gone", None)]);
        let ticks = ticks_per_second();
        let before = cpu_seconds(me, ticks).unwrap_or(0.0);
        let deadline = Instant::now() + std::time::Duration::from_secs(60);
        let mut x = 0u64;
        // Burn CPU until the kernel has counted a few ticks of it.
        while cpu_seconds(me, ticks).unwrap_or(0.0) - before < 0.05 && Instant::now() < deadline {
            for _ in 0..100_000 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            }
        }
        std::hint::black_box(x);
        let used = meter.stop();
        assert_eq!(used.len(), 1, "a process without a pid is left out");
        assert_eq!(used[0].process, "self");
        assert!(used[0].seconds >= 0.049, "{used:?}");
    }
}
