//! Requests run on threads of their own: a [`Job`] holds one's outcome, and a [`Bell`] tells a
//! waiter that some job ended.
//!
//! A stepped bell ([`Bell::stepped`], for the simulator) runs no thread: its jobs wait in a
//! queue, and run one at a time on the thread that polls or waits, in an order drawn from a
//! seed. Each order is one the threads could have taken, and the same seed takes the same
//! one, so a failing run replays exactly.

use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};

use crate::Error;
use crate::draw::Rng;
use crate::store::Client;

/// Work on a thread of its own, whose outcome lands here before the bell rings: once rung,
/// the outcome is there to take.
pub(crate) struct Job<T>(Arc<Mutex<Slot<T>>>);

enum Slot<T> {
    Running,
    /// Nobody waits for the outcome any more; a success is handed to this clean-up instead
    /// (an upload created for a writer that stopped meanwhile is aborted).
    Abandoned(Box<dyn FnOnce(T) + Send>),
    Ended(Result<T, Error>),
    Taken,
}

/// Counts ended jobs, so that a waiter misses none that ends after it looked.
#[derive(Default)]
pub(crate) struct Bell {
    rung: Mutex<u64>,
    ring: Condvar,
    steps: Option<Mutex<Steps>>,
}

/// The jobs of a stepped bell that have not run, and what draws the next one.
struct Steps {
    queued: Vec<Task>,
    rng: Rng,
}

type Task = Box<dyn FnOnce() + Send>;

/// Runs `work` on a thread of its own, which rings `bell` when it ends. A panic in `work`, or a
/// thread that cannot be started, is the job's failure: it ends either way, and rings.
pub(crate) fn spawn<T: Send + 'static>(
    client: &Arc<Client>,
    bell: &Arc<Bell>,
    work: impl FnOnce(&Client) -> Result<T, Error> + Send + 'static,
) -> Job<T> {
    spawn_as("s3-syncr-upload", client, bell, work)
}

/// [`spawn`], on a thread named `name` (what `ps -L` and `/proc/<pid>/task` show).
pub(crate) fn spawn_as<T: Send + 'static>(
    name: &str,
    client: &Arc<Client>,
    bell: &Arc<Bell>,
    work: impl FnOnce(&Client) -> Result<T, Error> + Send + 'static,
) -> Job<T> {
    spawn_on(
        std::thread::Builder::new().name(name.into()),
        client,
        bell,
        work,
    )
}

fn spawn_on<T: Send + 'static>(
    thread: std::thread::Builder,
    client: &Arc<Client>,
    bell: &Arc<Bell>,
    work: impl FnOnce(&Client) -> Result<T, Error> + Send + 'static,
) -> Job<T> {
    let job = Job(Arc::new(Mutex::new(Slot::Running)));
    // Weak: a queued task must not keep its stepped bell alive, which runs it when dropped.
    let (client, ended, slot) = (client.clone(), Arc::downgrade(bell), job.0.clone());
    let task = move || {
        let result = panic::catch_unwind(AssertUnwindSafe(|| work(&*client)))
            .unwrap_or_else(|_| Err(Error::internal("a request's thread panicked")));
        end(&slot, result);
        if let Some(bell) = Weak::upgrade(&ended) {
            bell.ring();
        }
    };
    if let Some(steps) = &bell.steps {
        lock(steps).queued.push(Box::new(task));
        return job;
    }
    // A thread's job keeps the bell alive, as the waiter may be gone and the bell with it.
    let bell_kept = bell.clone();
    let spawned = thread.spawn(move || {
        task();
        drop(bell_kept);
    });
    if let Err(err) = spawned {
        end(&job.0, Err(Error::internal(format!("no thread: {err}"))));
        bell.ring();
    }
    job
}

/// Runs `first` and `second` at once, `second` on a thread of its own, and returns both
/// outcomes: two requests that need nothing of each other then cost one round trip, not two.
/// For a stepped client (the simulator) they run one after the other, `first` first, so that a
/// seed replays; so they do when no thread can be started.
pub(crate) fn both<A: Send, B: Send>(
    client: &Client,
    first: impl FnOnce() -> A + Send,
    second: impl FnOnce() -> B + Send,
) -> (A, B) {
    if client.stepped() {
        let a = first();
        return (a, second());
    }
    // Shared, not moved: a thread that cannot be started drops what it was given.
    let second = Mutex::new(Some(second));
    let run = || lock(&second).take().map(|second| second());
    std::thread::scope(|scope| {
        let builder = std::thread::Builder::new().name("s3-syncr-request".into());
        let thread = builder.spawn_scoped(scope, run);
        let a = first();
        let b = match thread {
            Ok(thread) => thread
                .join()
                .unwrap_or_else(|panic| panic::resume_unwind(panic)),
            Err(_) => run(),
        };
        (a, b.expect("run once"))
    })
}

/// Lands `result` in `slot`, or hands it to the clean-up of an abandoned job.
fn end<T>(slot: &Mutex<Slot<T>>, result: Result<T, Error>) {
    let mut slot = lock(slot);
    match std::mem::replace(&mut *slot, Slot::Taken) {
        Slot::Abandoned(clean_up) => {
            drop(slot);
            if let Ok(value) = result {
                clean_up(value);
            }
        }
        _ => *slot = Slot::Ended(result),
    }
}

impl<T> Job<T> {
    pub(crate) fn is_finished(&self) -> bool {
        matches!(*lock(&self.0), Slot::Ended(_))
    }

    /// The outcome; only once [`is_finished`](Job::is_finished).
    pub(crate) fn join(self) -> Result<T, Error> {
        match std::mem::replace(&mut *lock(&self.0), Slot::Taken) {
            Slot::Ended(result) => result,
            _ => Err(Error::internal("a job was joined before it ended")),
        }
    }

    /// Gives up on the outcome: a success, now or once the job ends, goes to `clean_up`.
    pub(crate) fn abandon(self, clean_up: impl FnOnce(T) + Send + 'static) {
        let mut slot = lock(&self.0);
        match std::mem::replace(&mut *slot, Slot::Taken) {
            Slot::Running => *slot = Slot::Abandoned(Box::new(clean_up)),
            Slot::Ended(Ok(value)) => {
                drop(slot);
                clean_up(value);
            }
            _ => {}
        }
    }
}

impl Bell {
    /// A bell whose jobs run on the waiter's thread, in an order drawn from `seed`.
    pub(crate) fn stepped(seed: u64) -> Bell {
        Bell {
            rung: Mutex::default(),
            ring: Condvar::new(),
            steps: Some(Mutex::new(Steps {
                queued: Vec::new(),
                rng: Rng::new(seed),
            })),
        }
    }

    /// The count of jobs ended so far, to wait past. A stepped bell first runs some of its
    /// queued jobs, drawn, as threads would have ended some before the waiter looked.
    pub(crate) fn seen(&self) -> u64 {
        while self.step(50) {}
        *lock(&self.rung)
    }

    /// Runs a queued job drawn at random, with `percent` chance; false if none ran.
    fn step(&self, percent: u64) -> bool {
        let Some(steps) = &self.steps else {
            return false;
        };
        let task = {
            let mut steps = lock(steps);
            if steps.queued.is_empty() || !steps.rng.chance(percent) {
                return false;
            }
            let count = steps.queued.len() as u64;
            let i = steps.rng.below(count) as usize;
            steps.queued.swap_remove(i)
        };
        task();
        true
    }

    fn ring(&self) {
        *lock(&self.rung) += 1;
        self.ring.notify_all();
    }

    /// Waits until a job ends after `seen` was read. A stepped bell runs its queued jobs
    /// until one has; with none left, nothing could ring it, and it returns.
    pub(crate) fn wait_past(&self, seen: u64) {
        if self.steps.is_some() {
            while *lock(&self.rung) == seen && self.step(100) {}
            return;
        }
        let rung = lock(&self.rung);
        drop(
            (self.ring)
                .wait_while(rung, |rung| *rung == seen)
                .unwrap_or_else(PoisonError::into_inner),
        );
    }
}

impl Drop for Bell {
    /// A stepped bell's queued jobs run even so, as threads would have gone on after their
    /// writer dropped: an abandoned upload is still cleaned up, a Complete still lands.
    fn drop(&mut self) {
        while self.step(100) {}
    }
}

/// A lock that a panic elsewhere does not poison: every value behind one is whole at all times.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn outcome<T: Send + 'static>(result: Result<T, Error>) -> Job<T> {
        let job = Job(Arc::new(Mutex::new(Slot::Running)));
        end(&job.0, result);
        job
    }

    #[test]
    fn an_abandoned_success_is_cleaned_up_once_whenever_it_ends() {
        let cleaned = Arc::new(AtomicUsize::new(0));
        let count = |cleaned: &Arc<AtomicUsize>| {
            let cleaned = cleaned.clone();
            move |n: usize| {
                cleaned.fetch_add(n, Ordering::SeqCst);
            }
        };
        // Ended before it was abandoned.
        outcome(Ok(1)).abandon(count(&cleaned));
        assert_eq!(cleaned.load(Ordering::SeqCst), 1);
        // Abandoned while running, then ended.
        let job: Job<usize> = Job(Arc::new(Mutex::new(Slot::Running)));
        let slot = job.0.clone();
        job.abandon(count(&cleaned));
        assert_eq!(cleaned.load(Ordering::SeqCst), 1);
        end(&slot, Ok(10));
        assert_eq!(cleaned.load(Ordering::SeqCst), 11);
        // A failure has nothing to clean up.
        outcome::<usize>(Err(Error::internal("x"))).abandon(count(&cleaned));
        assert_eq!(cleaned.load(Ordering::SeqCst), 11);
    }

    /// A client the jobs here never use.
    fn any_client() -> Arc<Client> {
        let mem = Arc::new(crate::client::mem::MemS3::default());
        let options = crate::Options::default();
        Arc::new(crate::client::mem::client(&mem, "j/log.bin", options))
    }

    #[test]
    fn a_thread_that_cannot_start_ends_its_job_and_rings() {
        let client: Arc<Client> = any_client();
        let bell = Arc::new(Bell::default());
        let seen = bell.seen();
        // No system gives a thread a stack this large.
        let thread = std::thread::Builder::new().stack_size(usize::MAX / 2);
        let job = spawn_on(thread, &client, &bell, |_| Ok(1));
        bell.wait_past(seen); // returns: it rang
        assert!(job.is_finished());
        assert!(matches!(job.join(), Err(Error::Internal { .. })));
    }

    #[test]
    fn a_job_that_panics_ends_with_an_error_and_rings() {
        let client: Arc<Client> = any_client();
        let bell = Arc::new(Bell::default());
        let seen = bell.seen();
        let job = spawn(&client, &bell, |_| -> Result<u8, Error> {
            std::panic::resume_unwind(Box::new("scripted"))
        });
        bell.wait_past(seen);
        assert!(matches!(job.join(), Err(Error::Internal { .. })));
    }

    #[test]
    fn join_takes_the_outcome_once_ended() {
        let job = outcome(Ok(5));
        assert!(job.is_finished());
        assert_eq!(job.join().ok(), Some(5));
        let running: Job<u8> = Job(Arc::new(Mutex::new(Slot::Running)));
        assert!(!running.is_finished());
        assert!(matches!(running.join(), Err(Error::Internal { .. })));
    }

    #[test]
    fn a_stepped_bell_runs_its_jobs_on_the_waiter_thread_and_the_rest_when_dropped() {
        let client: Arc<Client> = any_client();
        let bell = Arc::new(Bell::stepped(7));
        let ran = Arc::new(Mutex::new(Vec::new()));
        let here = std::thread::current().id();
        let job = |n: usize| {
            let ran = ran.clone();
            spawn(&client, &bell, move |_| {
                lock(&ran).push((n, std::thread::current().id()));
                Ok(n)
            })
        };
        let jobs: Vec<Job<usize>> = (0..3).map(job).collect();
        assert!(lock(&ran).is_empty(), "nothing runs until the waiter looks");
        let seen = *lock(&bell.rung);
        bell.wait_past(seen);
        assert!(!lock(&ran).is_empty(), "waiting ran one");
        assert!(lock(&ran).iter().all(|(_, thread)| *thread == here));
        let finished = jobs.iter().filter(|j| j.is_finished()).count();
        assert_eq!(finished, lock(&ran).len());
        let last = job(3);
        last.abandon(|_| {});
        drop(jobs);
        drop(bell);
        let mut ran: Vec<usize> = lock(&ran).iter().map(|(n, _)| *n).collect();
        ran.sort_unstable();
        assert_eq!(
            ran,
            [0, 1, 2, 3],
            "dropping the bell ran the rest, abandoned or not"
        );
    }
}
