//! Independent jobs run on the machine's cores, their results returned in job order, so
//! nothing the tool prints depends on how the jobs were scheduled.

use std::sync::atomic::{AtomicUsize, Ordering};

/// One job: it borrows what it reads, and runs on any thread.
pub type Job<'a, T> = dyn Fn() -> T + Sync + 'a;

/// Runs `jobs` on up to as many threads as there are cores (the calling thread is one of
/// them); returns their results in the order of `jobs`. A job's panic is the caller's.
pub fn in_order<T: Send>(jobs: &[&Job<'_, T>]) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let index = next.fetch_add(1, Ordering::Relaxed);
            let Some(job) = jobs.get(index) else {
                break;
            };
            done.push((index, job()));
        }
        done
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let helpers = cores.min(jobs.len()).saturating_sub(1);
    let mut done = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..helpers).map(|_| scope.spawn(work)).collect();
        let mut done = work();
        for handle in handles {
            let theirs = handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            done.extend(theirs);
        }
        done
    });
    done.sort_by_key(|(index, _)| *index);
    done.into_iter().map(|(_, result)| result).collect()
}

#[cfg(test)]
mod tests {
    use super::in_order;

    #[test]
    fn results_come_back_in_job_order() {
        let slow = || {
            std::thread::sleep(std::time::Duration::from_millis(30));
            1
        };
        let fast = || 2;
        let jobs: [&super::Job<'_, i32>; 4] = [&slow, &fast, &fast, &|| 3];
        assert_eq!(in_order(&jobs), vec![1, 2, 2, 3]);
        assert_eq!(in_order::<i32>(&[]), Vec::<i32>::new());
    }
}
