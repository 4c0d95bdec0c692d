//! [`Worker`] and [`Dispatch`]: where a grant callback runs.

use crate::delivery::Deliver;
use crate::Error;
use std::fmt;
use std::sync::mpsc;
use std::sync::Arc;

/// Where an async set's grant callback runs (spec rule 9).
#[derive(Clone, Debug)]
pub enum Dispatch {
    /// On the thread whose operation completed the grant: inside `on_grant` when everything
    /// is free at once, else inside the release or cancel that freed the last resource
    /// (the seed's direct callbacks). Chains of direct callbacks run in a loop, not
    /// recursively.
    Direct,
    /// On a dedicated [`Worker`] thread, in grant order (the review's `kthread_worker`).
    Worker(Worker),
    /// On rayon's global thread pool (the seed's deferred workqueue callbacks).
    Pool,
}

/// A dedicated callback thread: grants dispatched to it run one at a time, in the order they
/// were granted.
///
/// Clones share the thread. The thread ends once every clone is dropped and every request
/// that names it has been delivered or dropped.
#[derive(Clone)]
pub struct Worker {
    inner: Arc<WorkerInner>,
}

struct WorkerInner {
    name: String,
    jobs: mpsc::Sender<Arc<dyn Deliver>>,
}

impl Worker {
    /// Starts a worker thread named `name`.
    ///
    /// `Err(Error::Spawn(ErrorKind::InvalidInput))` if `name` contains a NUL byte (a thread
    /// name cannot), `Err(Error::Spawn(kind))` if the system refuses the thread.
    pub fn spawn(name: &str) -> Result<Worker, Error> {
        if name.contains('\0') {
            return Err(Error::Spawn(std::io::ErrorKind::InvalidInput));
        }
        let (jobs, queue) = mpsc::channel::<Arc<dyn Deliver>>();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                // Ends when every sender (every Worker clone) is gone.
                loop {
                    let job = match queue.try_recv() {
                        Ok(job) => job,
                        Err(mpsc::TryRecvError::Disconnected) => break,
                        Err(mpsc::TryRecvError::Empty) => {
                            // Going idle: let other threads run what this one deferred.
                            crate::lockfree::hand_off_deferred_frees();
                            match queue.recv() {
                                Ok(job) => job,
                                Err(mpsc::RecvError) => break,
                            }
                        }
                    };
                    job.run_callback();
                }
            })
            .map_err(|e| Error::Spawn(e.kind()))?;
        Ok(Worker {
            inner: Arc::new(WorkerInner {
                name: name.to_owned(),
                jobs,
            }),
        })
    }

    /// The thread's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    pub(crate) fn send(&self, job: Arc<dyn Deliver>) {
        // The receiver lives as long as any sender, and we hold one: sending cannot fail.
        let _ = self.inner.jobs.send(job);
    }
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("name", &self.inner.name)
            .finish()
    }
}
