//! How many CPUs other work wants right now: the runnable tasks of the machine (`/proc/stat`
//! `procs_running`) less this thread and its OpenMP workers (the threads of this process that
//! are running and carry the calling thread's name: libgomp's workers inherit the name of the
//! thread that started them). Linux only; elsewhere there is no sample.

use std::fs;

/// The number of runnable tasks of the machine that are not the calling thread's compute
/// threads, or `None` where `/proc` cannot say.
pub fn others_runnable() -> Option<f64> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let running = procs_running(&stat)?;
    let own = own_compute_threads_running()?;
    Some(running.saturating_sub(own) as f64)
}

/// `procs_running` of a `/proc/stat` text.
fn procs_running(stat: &str) -> Option<usize> {
    stat.lines()
        .find_map(|line| line.strip_prefix("procs_running "))
        .and_then(|n| n.trim().parse().ok())
}

/// The name and the state letter of a `/proc/<pid>/task/<tid>/stat` line: `tid (name) S ...`
/// (the name may hold spaces and parentheses; it ends at the last `)`).
fn name_and_state(stat: &str) -> Option<(&str, char)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?;
    let state = stat.get(close + 1..)?.trim_start().chars().next()?;
    Some((name, state))
}

/// Running threads of this process named like the calling thread (at least 1: the caller).
fn own_compute_threads_running() -> Option<usize> {
    let me = fs::read_to_string("/proc/thread-self/comm").ok()?;
    let me = me.trim_end_matches('\n');
    let mut running = 0;
    for task in fs::read_dir("/proc/self/task").ok()?.flatten() {
        let Ok(stat) = fs::read_to_string(task.path().join("stat")) else {
            continue; // the thread ended while we looked
        };
        if let Some((name, 'R')) = name_and_state(&stat)
            && name == me
        {
            running += 1;
        }
    }
    Some(running.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat_and_task_stat_lines() {
        let stat = "cpu  1 2 3\nctxt 9\nprocs_running 3\nprocs_blocked 0\n";
        assert_eq!(procs_running(stat), Some(3));
        assert_eq!(procs_running("cpu 1 2\n"), None);
        assert_eq!(
            name_and_state("123 (teacher-model) R 1 2 3"),
            Some(("teacher-model", 'R'))
        );
        assert_eq!(name_and_state("7 (a (b) c) S 1"), Some(("a (b) c", 'S')));
        assert_eq!(name_and_state("garbage"), None);
    }

    #[test]
    fn a_sample_counts_at_most_the_machine_s_runnable_tasks() {
        if let Some(others) = others_runnable() {
            assert!(others >= 0.0);
        }
    }
}
