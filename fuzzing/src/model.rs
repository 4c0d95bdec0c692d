//! A plain executable model of `shared/kds-spec.md`: one `Vec` queue per resource, the
//! trigger rule evaluated from scratch, no concurrency and no cleverness. The differential
//! harness runs every operation on this model and on both engines and compares the results.
//!
//! The model states each rule as directly as it can:
//! - rule 1: a set's links are appended to every queue in one call;
//! - rule 2: [`Model::triggered`] reads the queue ahead of a link;
//! - rule 3: after every operation [`Model::settle`] grants every set whose links are all
//!   triggered, and releases at once those whose callback releases (to a fixpoint);
//! - rule 5: `cancel` succeeds exactly when the set is still queued;
//! - rule 8: `sync_locked` is "any sync set has a link here", `Fail` refuses and `Ignore`
//!   forces the links that would not be triggered at once;
//! - rule 11: duplicates are merged, exclusive winning; an empty set is granted at once.

use kds::{Error, Locked};

/// Where a set stands in the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Built but not enqueued (a future not yet polled).
    Unqueued,
    /// Enqueued, not granted.
    Queued,
    /// Granted and held.
    Granted,
    /// Released, cancelled or refused: no link left.
    Gone,
}

#[derive(Debug, Clone)]
struct Link {
    set: usize,
    exclusive: bool,
    /// Triggered at enqueue by the Ignore policy, whatever is ahead (rule 8).
    forced: bool,
}

#[derive(Debug, Clone)]
struct Set {
    /// (resource, exclusive), merged and sorted.
    entries: Vec<(usize, bool)>,
    sync: bool,
    policy: Locked,
    /// Its grant callback releases the set at once (a direct callback that drops the guard).
    release_on_grant: bool,
    status: Status,
}

/// The model: queues per resource and the state of every set ever made.
#[derive(Debug, Default, Clone)]
pub struct Model {
    queues: Vec<Vec<Link>>,
    sets: Vec<Set>,
}

impl Model {
    /// An empty model.
    pub fn new() -> Model {
        Model::default()
    }

    /// Creates a resource; returns its index.
    pub fn new_resource(&mut self) -> usize {
        self.queues.push(Vec::new());
        self.queues.len() - 1
    }

    /// Number of resources created.
    pub fn resources(&self) -> usize {
        self.queues.len()
    }

    /// Records a set (not enqueued yet); returns its id. `entries` may name a resource twice.
    pub fn new_set(
        &mut self,
        entries: &[(usize, bool)],
        sync: bool,
        policy: Locked,
        release_on_grant: bool,
    ) -> usize {
        let mut merged: Vec<(usize, bool)> = Vec::new();
        for &(r, x) in entries {
            assert!(r < self.queues.len(), "model: no resource {r}");
            match merged.iter_mut().find(|(m, _)| *m == r) {
                Some(m) => m.1 |= x,
                None => merged.push((r, x)),
            }
        }
        merged.sort_unstable();
        self.sets.push(Set {
            entries: merged,
            sync,
            policy: if sync { Locked::Wait } else { policy },
            release_on_grant,
            status: Status::Unqueued,
        });
        self.sets.len() - 1
    }

    /// The status of set `id`.
    pub fn status(&self, id: usize) -> Status {
        self.sets[id].status
    }

    /// Statuses of all sets, by id.
    pub fn statuses(&self) -> Vec<Status> {
        self.sets.iter().map(|s| s.status).collect()
    }

    /// Whether any sync set has a link on `r` (rule 8).
    pub fn sync_locked(&self, r: usize) -> bool {
        self.queues[r].iter().any(|l| self.sets[l.set].sync)
    }

    /// Rule 2 for the link at `pos` of queue `r` (or a forced link).
    fn triggered(&self, r: usize, pos: usize) -> bool {
        let q = &self.queues[r];
        let link = &q[pos];
        link.forced
            || if link.exclusive {
                pos == 0
            } else {
                q[..pos].iter().all(|l| !l.exclusive)
            }
    }

    fn all_triggered(&self, id: usize) -> bool {
        self.sets[id].entries.iter().all(|&(r, _)| {
            let pos = self.queues[r].iter().position(|l| l.set == id);
            self.triggered(r, pos.expect("model: a queued set lost a link"))
        })
    }

    /// Enqueues set `id` (rule 1), applying its policy (rule 8), then settles (rule 3).
    /// `Err(Busy)`: refused by `Locked::Fail`, nothing queued.
    pub fn enqueue(&mut self, id: usize) -> Result<(), Error> {
        assert_eq!(
            self.sets[id].status,
            Status::Unqueued,
            "model: enqueued twice"
        );
        let entries = self.sets[id].entries.clone();
        let policy = self.sets[id].policy;
        if policy == Locked::Fail && entries.iter().any(|&(r, _)| self.sync_locked(r)) {
            self.sets[id].status = Status::Gone;
            return Err(Error::Busy);
        }
        for &(r, exclusive) in &entries {
            let locked = self.sync_locked(r);
            self.queues[r].push(Link {
                set: id,
                exclusive,
                forced: false,
            });
            let pos = self.queues[r].len() - 1;
            if policy == Locked::Ignore && locked && !self.triggered(r, pos) {
                self.queues[r][pos].forced = true;
            }
        }
        self.sets[id].status = Status::Queued;
        self.settle();
        Ok(())
    }

    /// Grants every queued set whose links are all triggered, releasing those that release on
    /// grant, until nothing changes (rule 3).
    fn settle(&mut self) {
        loop {
            let ready = (0..self.sets.len())
                .find(|&id| self.sets[id].status == Status::Queued && self.all_triggered(id));
            let Some(id) = ready else { return };
            self.sets[id].status = Status::Granted;
            if self.sets[id].release_on_grant {
                self.remove_links(id);
            }
        }
    }

    fn remove_links(&mut self, id: usize) {
        for q in &mut self.queues {
            q.retain(|l| l.set != id);
        }
        self.sets[id].status = Status::Gone;
    }

    /// Releases granted set `id` (rule 6).
    pub fn release(&mut self, id: usize) {
        assert_eq!(
            self.sets[id].status,
            Status::Granted,
            "model: release of a non-held set"
        );
        self.remove_links(id);
        self.settle();
    }

    /// Cancels set `id` (rule 5): `true` if it was queued and is now gone, `false` if it was
    /// already granted (or gone).
    pub fn cancel(&mut self, id: usize) -> bool {
        match self.sets[id].status {
            Status::Queued => {
                self.remove_links(id);
                self.settle();
                true
            }
            Status::Unqueued => {
                self.sets[id].status = Status::Gone;
                true
            }
            Status::Granted | Status::Gone => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_shared_exclusive_shared_cancel_from_the_middle() {
        let mut m = Model::new();
        let r = m.new_resource();
        let s1 = m.new_set(&[(r, false)], false, Locked::Wait, false);
        let e = m.new_set(&[(r, true)], false, Locked::Wait, false);
        let s2 = m.new_set(&[(r, false)], false, Locked::Wait, false);
        for id in [s1, e, s2] {
            m.enqueue(id).unwrap();
        }
        assert_eq!(
            m.statuses(),
            [Status::Granted, Status::Queued, Status::Queued]
        );
        assert!(m.cancel(e));
        assert_eq!(m.status(s2), Status::Granted);
    }

    #[test]
    fn model_policies_against_a_sync_holder() {
        let mut m = Model::new();
        let r = m.new_resource();
        let held = m.new_set(&[(r, true)], true, Locked::Wait, false);
        m.enqueue(held).unwrap();
        let fail = m.new_set(&[(r, false)], false, Locked::Fail, false);
        assert_eq!(m.enqueue(fail), Err(Error::Busy));
        let ignore = m.new_set(&[(r, true)], false, Locked::Ignore, false);
        m.enqueue(ignore).unwrap();
        assert_eq!(m.status(ignore), Status::Granted);
        let later = m.new_set(&[(r, false)], false, Locked::Wait, false);
        m.enqueue(later).unwrap();
        m.release(held);
        assert_eq!(
            m.status(later),
            Status::Queued,
            "waits behind the forced link"
        );
        m.release(ignore);
        assert_eq!(m.status(later), Status::Granted);
    }

    #[test]
    fn model_release_on_grant_chains_to_a_fixpoint() {
        let mut m = Model::new();
        let r = m.new_resource();
        let first = m.new_set(&[(r, true)], false, Locked::Wait, false);
        m.enqueue(first).unwrap();
        let chain: Vec<usize> = (0..5)
            .map(|_| m.new_set(&[(r, true), (r, false)], false, Locked::Wait, true))
            .collect();
        let last = m.new_set(&[(r, false)], false, Locked::Wait, false);
        for &id in chain.iter().chain([&last]) {
            m.enqueue(id).unwrap();
        }
        m.release(first);
        assert!(chain.iter().all(|&id| m.status(id) == Status::Gone));
        assert_eq!(m.status(last), Status::Granted);
    }
}
