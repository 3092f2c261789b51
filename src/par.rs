//! An ordered parallel map with bounded memory: one thread reads jobs, `threads` workers process
//! them, and the calling thread consumes the results in the order the jobs were read.
//!
//! Job and result buffers circulate through a fixed pool of `depth` slots, so nothing is
//! allocated per job once the buffers have grown to size, and at most `depth` jobs are in flight
//! whatever the input size. Jobs that can be large are bounded by bytes too (a [`Budget`]). The
//! first error in job order wins: a worker's error is reported when its job's turn comes, after
//! every earlier result was consumed.

use anyhow::{anyhow, Result};
use std::collections::BTreeMap;
use std::sync::mpsc::{channel, sync_channel, Receiver};
use std::sync::{Arc, Condvar, Mutex};

/// A bound on the bytes of jobs in flight: `cost(job)` (0 for ordinary jobs, which `depth`
/// bounds) is taken from `bytes` when the job is read and given back when it is written; the
/// reader waits while the job would not fit, unless nothing else is in flight (one job always
/// goes through).
pub struct Budget<'a, J> {
    pub bytes: usize,
    pub cost: &'a (dyn Fn(&J) -> usize + Sync),
}

impl<J> Budget<'_, J> {
    /// No bound beyond `depth`.
    pub fn none() -> Self {
        Budget { bytes: usize::MAX, cost: &|_| 0 }
    }
}

/// The bytes in flight and whether the consumer has stopped (then nobody waits).
#[derive(Default)]
struct Gate {
    state: Mutex<(usize, bool)>,
    cv: Condvar,
}

impl Gate {
    /// Takes `cost` of `limit`, waiting for room; false once the consumer has stopped.
    fn take(&self, cost: usize, limit: usize) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while !s.1 && s.0 > 0 && s.0.saturating_add(cost) > limit {
            s = self.cv.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        s.0 += cost;
        !s.1
    }

    fn give(&self, cost: usize) {
        if cost > 0 {
            self.state.lock().unwrap_or_else(|p| p.into_inner()).0 -= cost;
            self.cv.notify_all();
        }
    }

    fn close(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).1 = true;
        self.cv.notify_all();
    }
}

/// Runs `read` → `work` (on `states.len()` threads, each with its own state) → `write` in order.
///
/// * `read(job)` fills the next job in place and returns false at the end of the input.
/// * `work(state, job, out)` turns a job into a result in place.
/// * `write(job, out)` consumes results in job order; its error stops everything.
///
/// Returns the worker states (for merging what they gathered).
pub fn ordered_map<J, O, S>(
    states: Vec<S>,
    depth: usize,
    budget: Budget<J>,
    read: impl FnMut(&mut J) -> Result<bool> + Send,
    work: impl Fn(&mut S, &J, &mut O) -> Result<()> + Sync,
    mut write: impl FnMut(&mut J, &mut O) -> Result<()>,
) -> Result<Vec<S>>
where
    J: Default + Send,
    O: Default + Send,
    S: Send,
{
    let depth = depth.max(states.len() + 1);
    let (free_tx, free_rx) = channel::<(J, O)>();
    for _ in 0..depth {
        free_tx.send((J::default(), O::default())).expect("the pool is open");
    }
    let (job_tx, job_rx) = sync_channel::<(u64, J, O)>(depth);
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (done_tx, done_rx) = channel::<(u64, J, O, Result<()>)>();
    let work = &work;
    let gate = &Gate::default();
    let budget = &budget;
    std::thread::scope(|s| {
        let reader = s.spawn(move || read_loop(read, budget, gate, free_rx, job_tx));
        let workers: Vec<_> = states
            .into_iter()
            .map(|mut st| {
                let (rx, tx) = (Arc::clone(&job_rx), done_tx.clone());
                s.spawn(move || {
                    loop {
                        let next = rx.lock().map_err(|_| ()).and_then(|r| r.recv().map_err(|_| ()));
                        let Ok((seq, job, mut out)) = next else { break };
                        // A panic loses no job: it becomes that job's error, reported in order,
                        // so the run ends (no output committed) instead of waiting for the job.
                        let r =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&mut st, &job, &mut out)))
                                .unwrap_or_else(|p| {
                                    Err(anyhow!("internal error: a worker panicked: {}", panic_text(&p)))
                                });
                        if tx.send((seq, job, out, r)).is_err() {
                            break;
                        }
                    }
                    st
                })
            })
            .collect();
        drop(done_tx);
        drop(job_rx); // the workers hold the only receivers: when they stop, the reader's send fails
        let written = write_loop(&mut write, budget, gate, done_rx, free_tx);
        gate.close(); // a reader waiting for room stops
                      // Dropping the receivers above (on return from write_loop) unblocks the reader and workers.
        let states: Vec<S> = workers
            .into_iter()
            .map(|w| w.join().map_err(|_| anyhow!("a worker thread panicked")))
            .collect::<Result<_>>()?;
        let read = reader.join().map_err(|_| anyhow!("the reader thread panicked"))?;
        // An error in an earlier result explains a stopped reader; else the reader's own error.
        written.and(read).map(|_| states)
    })
}

/// `work(i)` for every `i` in `0..n` on `workers` threads, each result handed to
/// `consume(i, result)` in the order of `i` as soon as its turn comes (the files of a directory:
/// statistics print in the order of the paths, whatever order they finish in). A panic in `work`
/// is that item's error; an error of `consume` stops the run.
pub fn each_in_order<T: Send>(
    n: usize,
    workers: usize,
    work: impl Fn(usize) -> T + Sync,
    mut consume: impl FnMut(usize, T) -> Result<()>,
) -> Result<()> {
    let workers = workers.clamp(1, n.max(1));
    if workers == 1 {
        // one at a time: on this thread (each thread handed work costs a wakeup, milliseconds
        // on an idle virtual CPU, which a single input would pay for nothing)
        for i in 0..n {
            let t = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(i)))
                .map_err(|p| anyhow!("internal error: a worker panicked: {}", panic_text(&p)))?;
            consume(i, t)?;
        }
        return Ok(());
    }
    let mut next = 0;
    let read = |j: &mut usize| {
        *j = next;
        next += 1;
        Ok(*j < n)
    };
    let work = |_: &mut (), &j: &usize, out: &mut Option<T>| {
        *out = Some(work(j));
        Ok(())
    };
    let write = |&mut j: &mut usize, out: &mut Option<T>| match out.take() {
        Some(t) => consume(j, t),
        None => Err(anyhow!("internal error: item {j} has no result")),
    };
    ordered_map(vec![(); workers], 2 * workers, Budget::none(), read, work, write).map(|_| ())
}

/// What a panic said, when it said it with a string.
fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default()
}

fn read_loop<J, O>(
    mut read: impl FnMut(&mut J) -> Result<bool>,
    budget: &Budget<J>,
    gate: &Gate,
    free: Receiver<(J, O)>,
    jobs: std::sync::mpsc::SyncSender<(u64, J, O)>,
) -> Result<()> {
    let mut seq = 0u64;
    loop {
        let Ok((mut job, out)) = free.recv() else {
            return Ok(()); // the consumer stopped: its error is the one to report
        };
        if !read(&mut job)? || !gate.take((budget.cost)(&job), budget.bytes) {
            return Ok(());
        }
        if jobs.send((seq, job, out)).is_err() {
            return Ok(());
        }
        seq += 1;
    }
}

fn write_loop<J, O>(
    write: &mut impl FnMut(&mut J, &mut O) -> Result<()>,
    budget: &Budget<J>,
    gate: &Gate,
    done: Receiver<(u64, J, O, Result<()>)>,
    free: std::sync::mpsc::Sender<(J, O)>,
) -> Result<()> {
    let mut next = 0u64;
    let mut waiting: BTreeMap<u64, (J, O, Result<()>)> = BTreeMap::new();
    for (seq, job, out, r) in done {
        waiting.insert(seq, (job, out, r));
        while let Some((mut job, mut out, r)) = waiting.remove(&next) {
            r?;
            let cost = (budget.cost)(&job); // before `write`, which may free the job's memory
            write(&mut job, &mut out)?;
            gate.give(cost);
            next += 1;
            let _ = free.send((job, out));
        }
    }
    if !waiting.is_empty() {
        return Err(anyhow!("a worker stopped before finishing its job"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_reports_the_first_error() {
        for threads in 1..4 {
            let mut n = 0u32;
            let mut got = Vec::new();
            ordered_map(
                vec![(); threads],
                3,
                Budget::none(),
                |j: &mut u32| {
                    n += 1;
                    *j = n;
                    Ok(n <= 1000)
                },
                |_, j, o: &mut u32| {
                    if j % 7 == 0 {
                        std::thread::yield_now();
                    }
                    *o = j * 2;
                    Ok(())
                },
                |_, o| {
                    got.push(*o);
                    Ok(())
                },
            )
            .unwrap();
            assert_eq!(got, (1..=1000).map(|j| j * 2).collect::<Vec<_>>());

            let mut n = 0u32;
            let mut written = 0;
            let e = ordered_map(
                vec![(); threads],
                4,
                Budget::none(),
                |j: &mut u32| {
                    n += 1;
                    *j = n;
                    Ok(true) // endless: the error must stop the reader
                },
                |_, j, _o: &mut u32| if *j == 50 || *j == 60 { Err(anyhow!("bad {j}")) } else { Ok(()) },
                |_, _| {
                    written += 1;
                    Ok(())
                },
            )
            .unwrap_err();
            assert_eq!(e.to_string(), "bad 50");
            assert_eq!(written, 49);
        }
    }

    #[test]
    fn a_panicking_worker_ends_the_run_with_an_error() {
        // Quiet the default hook's message for the expected panic.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        for threads in 1..4 {
            let (tx, rx) = std::sync::mpsc::channel();
            let handle = std::thread::spawn(move || {
                let mut n = 0u32;
                let mut written = 0;
                let r = ordered_map(
                    vec![(); threads],
                    3,
                    Budget::none(),
                    |j: &mut u32| {
                        n += 1;
                        *j = n;
                        Ok(n <= 1000)
                    },
                    |_, j, _o: &mut u32| {
                        assert!(*j != 77, "worker bug at job {j}");
                        Ok(())
                    },
                    |_, _| {
                        written += 1;
                        Ok(())
                    },
                );
                let _ = tx.send((r.map(|_| ()), written));
            });
            let (r, written) =
                rx.recv_timeout(std::time::Duration::from_secs(20)).expect("ordered_map hung after a worker panic");
            handle.join().unwrap();
            let e = r.unwrap_err().to_string();
            assert!(e.contains("worker panicked") && e.contains("job 77"), "{e}");
            assert_eq!(written, 76);
        }
        std::panic::set_hook(hook);
    }

    /// Costly jobs are admitted by bytes: with room for two, no more than two are ever read
    /// and not yet written, whatever the depth and thread count; without a budget, more are.
    #[test]
    fn a_budget_bounds_the_bytes_in_flight() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        for (bytes, bound) in [(25, 2), (usize::MAX, 8)] {
            let (read, written, most) = (AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0));
            let cost = |_: &u32| 10;
            ordered_map(
                vec![(); 4],
                8,
                Budget { bytes, cost: &cost },
                |j: &mut u32| {
                    // every job read before this one has been admitted
                    let n = read.fetch_add(1, SeqCst);
                    most.fetch_max(n - written.load(SeqCst), SeqCst);
                    *j = n as u32;
                    Ok(n < 200)
                },
                |_, _, _: &mut u32| {
                    std::thread::sleep(std::time::Duration::from_micros(200));
                    Ok(())
                },
                |_, _| {
                    written.fetch_add(1, SeqCst);
                    Ok(())
                },
            )
            .unwrap();
            let most = most.load(SeqCst);
            if bytes == 25 {
                assert!(most <= bound, "{most} jobs of 10 bytes in flight with room for 25");
            } else {
                assert!(most > 2, "without a budget the depth bounds it ({most})");
            }
        }
    }

    #[test]
    fn a_write_error_stops_everything() {
        let e = ordered_map(
            vec![(), ()],
            2,
            Budget::none(),
            |_: &mut u8| Ok(true),
            |_, _, _: &mut u8| Ok(()),
            |_, _| Err(anyhow!("disk full")),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "disk full");
    }

    /// On one thread (inline) and on several, items come in order and a panicking item is
    /// that item's error, which ends the run.
    #[test]
    fn each_in_order_keeps_order_and_reports_a_panic() {
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        for workers in [1, 3] {
            let mut seen = Vec::new();
            each_in_order(
                20,
                workers,
                |i| i * 2,
                |i, t| {
                    seen.push((i, t));
                    Ok(())
                },
            )
            .unwrap();
            assert_eq!(seen, (0..20).map(|i| (i, i * 2)).collect::<Vec<_>>(), "{workers} workers");
            let mut got = Vec::new();
            let e = each_in_order(
                20,
                workers,
                |i| {
                    assert!(i != 7, "item {i} is bad");
                    i
                },
                |i, _| {
                    got.push(i);
                    Ok(())
                },
            )
            .unwrap_err();
            assert!(e.to_string().contains("item 7 is bad"), "{e}");
            assert_eq!(got, (0..7).collect::<Vec<_>>(), "{workers} workers");
        }
        std::panic::set_hook(hook);
    }
}
