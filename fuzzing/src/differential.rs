//! The differential check: one decoded [`Script`] of operations runs step by step on the
//! lock-free engine, on the mutex reference and on the plain [`Model`] of the spec, and after
//! every step the three must agree on the outcome of the step and on the status of every set
//! ever made (queued, granted and held, or gone).
//!
//! Everything here runs on one thread, so every engine-side outcome is determined: direct
//! callbacks have run before the call that granted them returns, and a zero-timeout or
//! pre-interrupted wait is granted exactly when the set is grantable at once. Deferred
//! dispatch and real blocking are the [`concurrent`](super::concurrent) check's business.

use crate::model::{Model, Status};
use arbitrary::Arbitrary;
use kds::generic::{Acquire, Guard, Pending, Resource, ResourceSet};
use kds::harness::WeakResource;
use kds::reference::Reference;
use kds::{Access, Dispatch, Engine, Error, Interrupt, LockFree, Locked};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

/// At most this many operations of a script run (the rest is ignored).
pub const MAX_OPS: usize = 256;
/// At most this many resources exist at once in a script.
pub const MAX_RESOURCES: usize = 12;
/// At most this many entries (before merging duplicates) per requested set.
pub const MAX_ENTRIES: usize = 6;

/// A decoded fuzz input: resources to start with, then operations.
#[derive(Debug, Clone, Arbitrary)]
pub struct Script {
    /// Resources created before the first operation (taken modulo `MAX_RESOURCES`).
    pub initial_resources: u8,
    /// The operations, in order. Indices are taken modulo the number of candidates at that
    /// step; an operation without a candidate does nothing.
    pub ops: Vec<Op>,
}

/// One operation of a [`Script`].
#[derive(Debug, Clone, Arbitrary)]
pub enum Op {
    /// Create a resource.
    NewResource,
    /// Drop the handle of the n-th live resource (its links keep it alive, rule 10).
    DropResource(u8),
    /// Request a set: (n-th live resource, exclusive) entries, duplicates allowed.
    Request {
        /// How the set is requested.
        how: How,
        /// The locked policy (ignored by sync requests).
        policy: Policy,
        /// Entries, each (n-th live resource, exclusive).
        entries: Vec<(u8, bool)>,
    },
    /// Release the n-th granted set.
    Release(u8),
    /// Cancel the n-th cancellable request (a callback request, or a queued future, which
    /// is cancelled by dropping it).
    Cancel(u8),
    /// Poll the n-th unresolved future.
    Poll(u8),
    /// Drop the n-th live future, whatever its state.
    DropFuture(u8),
}

/// How a set is requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum How {
    /// `on_grant(Dispatch::Direct)`; the callback keeps the guard.
    Callback,
    /// `on_grant(Dispatch::Direct)`; the callback drops the guard at once (a release from
    /// inside a callback).
    CallbackReleasing,
    /// `acquire()`: a future, enqueued on its first poll.
    Future,
    /// `try_acquire()`.
    TryAcquire,
    /// `wait_timeout(0)`: enqueued, then cancelled by the timeout unless granted at once.
    WaitTimeout,
    /// `wait_interruptible` with an interrupt that has already fired.
    WaitInterrupted,
    /// `wait_interruptible(Some(Duration::MAX))` with an interrupt that has already fired: a
    /// timeout too long for `Instant` (issue 8), given up by the interrupt.
    WaitMaxInterrupted,
    /// `wait_timeout(1 ns)`: the smallest timeout that is not zero.
    WaitNanos,
    /// The one-liner, a set built where it is used and taken with `try_acquire()`, the guard
    /// dropped at once: granted and released in one step, or `WouldBlock`.
    OneLinerReleased,
    /// `lock()` where the model grants the set at once, `try_acquire()` where it would queue
    /// (`lock()` would block there); the guard dropped at once. An engine that blocks where
    /// the model grants hangs the run, which libFuzzer reports as a timeout.
    LockReleased,
}

impl Script {
    /// Decodes a script: the header, then operations until the bytes (or `MAX_OPS`) run out.
    /// `None` only for an input too short for the header.
    pub fn decode(bytes: &[u8]) -> Option<Script> {
        let mut u = arbitrary::Unstructured::new(bytes);
        let initial_resources = u.arbitrary().ok()?;
        let mut ops = Vec::new();
        while !u.is_empty() && ops.len() < MAX_OPS {
            match u.arbitrary() {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        Some(Script {
            initial_resources,
            ops,
        })
    }
}

impl How {
    fn sync(self) -> bool {
        matches!(
            self,
            How::TryAcquire
                | How::WaitTimeout
                | How::WaitInterrupted
                | How::WaitMaxInterrupted
                | How::WaitNanos
                | How::OneLinerReleased
                | How::LockReleased
        )
    }
    /// A sync request whose guard the harness drops at once.
    fn released_at_once(self) -> bool {
        matches!(self, How::OneLinerReleased | How::LockReleased)
    }
    fn callback(self) -> bool {
        matches!(self, How::Callback | How::CallbackReleasing)
    }
}

/// [`Locked`], decodable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum Policy {
    /// [`Locked::Wait`].
    Wait,
    /// [`Locked::Fail`].
    Fail,
    /// [`Locked::Ignore`].
    Ignore,
}

impl From<Policy> for Locked {
    fn from(p: Policy) -> Locked {
        match p {
            Policy::Wait => Locked::Wait,
            Policy::Fail => Locked::Fail,
            Policy::Ignore => Locked::Ignore,
        }
    }
}

/// A resolved step: an operation with its target chosen (by set id or resource index).
#[derive(Debug, Clone)]
enum Act {
    NewResource,
    DropResource(usize),
    Request {
        id: usize,
        how: How,
        policy: Locked,
        entries: Vec<(usize, bool)>,
    },
    Release(usize),
    Cancel(usize),
    Poll(usize),
    DropFuture(usize),
}

/// What a step returned, comparable between the model and the engines.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Done,
    Refused(Error),
    Acquired(Result<(), Error>),
    Cancelled(bool),
    Polled(Option<Result<(), Error>>),
}

/// Runs `script` on both engines and the model; panics with the step log at the first
/// disagreement or broken invariant. The `differential` fuzz target calls this.
pub fn run(script: &Script) {
    if let Err(e) = check(script) {
        panic!("{e}");
    }
}

/// Per-set bookkeeping of the driver, shared by all three sides.
#[derive(Debug, Clone)]
struct Meta {
    how: How,
    /// A callback request whose `Pending` was already used up by `cancel`.
    cancel_used: bool,
    /// A future that returned `Ready` or was dropped.
    future_done: bool,
    /// A future that was dropped.
    future_dropped: bool,
}

/// What a script exercised (to check that generated inputs reach the interesting paths).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Coverage {
    /// Steps run (including tear-down).
    pub steps: usize,
    /// Sets requested.
    pub requests: usize,
    /// Sets granted by a later step than their own request (a hand-off).
    pub handoffs: usize,
    /// Sync requests that gave up (would block, timeout, interrupt).
    pub sync_gave_up: usize,
    /// `cancel` calls that returned `true` / `false`.
    pub cancelled: usize,
    /// `cancel` calls that came too late.
    pub cancel_too_late: usize,
    /// Requests refused with `Busy` (policy Fail).
    pub refused: usize,
    /// Sets granted while a sync set held one of their resources (policy Ignore).
    pub forced: usize,
}

impl std::ops::AddAssign for Coverage {
    fn add_assign(&mut self, o: Coverage) {
        self.steps += o.steps;
        self.requests += o.requests;
        self.handoffs += o.handoffs;
        self.sync_gave_up += o.sync_gave_up;
        self.cancelled += o.cancelled;
        self.cancel_too_late += o.cancel_too_late;
        self.refused += o.refused;
        self.forced += o.forced;
    }
}

/// As [`run`], returning the report instead of panicking, and what the script exercised.
pub fn check(script: &Script) -> Result<Coverage, String> {
    let mut d = Driver {
        model: Model::new(),
        lock_free: Side::<LockFree>::new(),
        reference: Side::<Reference>::new(),
        live: Vec::new(),
        meta: Vec::new(),
        log: Vec::new(),
        coverage: Coverage::default(),
    };
    for _ in 0..(script.initial_resources as usize % MAX_RESOURCES).max(1) {
        d.step(Act::NewResource)?;
    }
    for op in script.ops.iter().take(MAX_OPS) {
        if let Some(act) = d.resolve(op) {
            d.step(act)?;
        }
    }
    d.tear_down()
}

struct Driver {
    model: Model,
    lock_free: Side<LockFree>,
    reference: Side<Reference>,
    /// Model indices of the resources whose handle is live.
    live: Vec<usize>,
    meta: Vec<Meta>,
    log: Vec<String>,
    coverage: Coverage,
}

fn pick<T: Copy>(candidates: &[T], n: u8) -> Option<T> {
    (!candidates.is_empty()).then(|| candidates[n as usize % candidates.len()])
}

impl Driver {
    fn ids(&self, keep: impl Fn(usize, &Meta, Status) -> bool) -> Vec<usize> {
        (0..self.meta.len())
            .filter(|&id| keep(id, &self.meta[id], self.model.status(id)))
            .collect()
    }

    /// Chooses the target of `op` from the model's state.
    fn resolve(&self, op: &Op) -> Option<Act> {
        Some(match op {
            Op::NewResource => {
                if self.live.len() >= MAX_RESOURCES {
                    return None;
                }
                Act::NewResource
            }
            Op::DropResource(n) => Act::DropResource(pick(&self.live, *n)?),
            Op::Request {
                how,
                policy,
                entries,
            } => Act::Request {
                id: self.meta.len(),
                how: *how,
                policy: (*policy).into(),
                entries: entries
                    .iter()
                    .take(MAX_ENTRIES)
                    .filter_map(|&(n, x)| Some((pick(&self.live, n)?, x)))
                    .collect(),
            },
            Op::Release(n) => Act::Release(pick(&self.ids(|_, _, s| s == Status::Granted), *n)?),
            Op::Cancel(n) => Act::Cancel(pick(
                &self.ids(|_, m, s| {
                    (m.how.callback() && !m.cancel_used)
                        || (m.how == How::Future && !m.future_done && s == Status::Queued)
                }),
                *n,
            )?),
            Op::Poll(n) => Act::Poll(pick(
                &self.ids(|_, m, _| m.how == How::Future && !m.future_done),
                *n,
            )?),
            Op::DropFuture(n) => Act::DropFuture(pick(
                &self.ids(|_, m, _| m.how == How::Future && !m.future_dropped),
                *n,
            )?),
        })
    }

    /// Runs `act` on the model and both engines and compares.
    fn step(&mut self, act: Act) -> Result<(), String> {
        self.log.push(format!("{act:?}"));
        let before = self.model.statuses();
        let expected = self.apply_model(&act);
        self.count(&act, &expected, &before);
        let lf = self.lock_free.apply(&act, &expected);
        let rf = self.reference.apply(&act, &expected);
        self.update_meta(&act, &expected);
        let fail = |what: String| {
            let mut report = format!("differential check failed: {what}\nsteps:\n");
            for (i, s) in self.log.iter().enumerate() {
                report += &format!("  {i:3}: {s}\n");
            }
            report
        };
        for (name, got) in [(LockFree::NAME, lf), (Reference::NAME, rf)] {
            match got {
                Err(e) => return Err(fail(format!("{name}: {e}"))),
                Ok(got) if got != expected => {
                    return Err(fail(format!(
                        "{name} returned {got:?}, the model {expected:?}"
                    )))
                }
                Ok(_) => {}
            }
        }
        let want = self.model.statuses();
        for (name, got) in [
            (LockFree::NAME, self.lock_free.statuses()),
            (Reference::NAME, self.reference.statuses()),
        ] {
            let got = got.map_err(|e| fail(format!("{name}: {e}")))?;
            if got != want {
                let diff: Vec<String> = (0..want.len())
                    .filter(|&i| got[i] != want[i])
                    .map(|i| format!("set {i}: {:?}, model {:?}", got[i], want[i]))
                    .collect();
                return Err(fail(format!("{name} disagrees: {}", diff.join("; "))));
            }
        }
        Ok(())
    }

    fn count(&mut self, act: &Act, outcome: &Outcome, before: &[Status]) {
        let c = &mut self.coverage;
        c.steps += 1;
        match outcome {
            Outcome::Refused(_) | Outcome::Polled(Some(Err(_))) => c.refused += 1,
            Outcome::Acquired(Err(_)) => c.sync_gave_up += 1,
            Outcome::Cancelled(true) => c.cancelled += 1,
            Outcome::Cancelled(false) => c.cancel_too_late += 1,
            _ => {}
        }
        if let Act::Request {
            id,
            policy: Locked::Ignore,
            ref entries,
            ..
        } = *act
        {
            let granted = self.model.status(id) == Status::Granted;
            let sync_held = entries.iter().any(|&(r, _)| self.model.sync_locked(r));
            if granted && sync_held {
                c.forced += 1;
            }
        }
        if let Act::Request { .. } = act {
            c.requests += 1;
        }
        c.handoffs += before
            .iter()
            .enumerate()
            .filter(|&(id, &s)| s == Status::Queued && self.model.status(id) != Status::Queued)
            .filter(|&(id, _)| !matches!(act, Act::Cancel(x) | Act::DropFuture(x) if *x == id))
            .count();
    }

    fn apply_model(&mut self, act: &Act) -> Outcome {
        let m = &mut self.model;
        match *act {
            Act::NewResource => {
                self.live.push(m.new_resource());
                Outcome::Done
            }
            Act::DropResource(r) => {
                self.live.retain(|&x| x != r);
                Outcome::Done
            }
            Act::Request {
                id,
                how,
                policy,
                ref entries,
            } => {
                let got = m.new_set(entries, how.sync(), policy, how == How::CallbackReleasing);
                assert_eq!(got, id);
                self.meta.push(Meta {
                    how,
                    cancel_used: false,
                    future_done: false,
                    future_dropped: false,
                });
                match how {
                    How::Future => Outcome::Done,
                    How::Callback | How::CallbackReleasing => match m.enqueue(id) {
                        Ok(()) => Outcome::Done,
                        Err(e) => Outcome::Refused(e),
                    },
                    How::TryAcquire
                    | How::WaitTimeout
                    | How::WaitInterrupted
                    | How::WaitMaxInterrupted
                    | How::WaitNanos
                    | How::OneLinerReleased
                    | How::LockReleased => {
                        m.enqueue(id).expect("sync sets are never refused");
                        if m.status(id) == Status::Granted {
                            if how.released_at_once() {
                                m.release(id);
                            }
                            Outcome::Acquired(Ok(()))
                        } else {
                            assert!(m.cancel(id));
                            Outcome::Acquired(Err(match how {
                                How::TryAcquire | How::OneLinerReleased | How::LockReleased => {
                                    Error::WouldBlock
                                }
                                How::WaitTimeout | How::WaitNanos => Error::Timeout,
                                _ => Error::Interrupted,
                            }))
                        }
                    }
                }
            }
            Act::Release(id) => {
                m.release(id);
                Outcome::Done
            }
            Act::Cancel(id) => {
                let cancelled = m.cancel(id);
                if self.meta[id].how == How::Future {
                    Outcome::Done
                } else {
                    Outcome::Cancelled(cancelled)
                }
            }
            Act::Poll(id) => {
                if m.status(id) == Status::Unqueued {
                    if let Err(e) = m.enqueue(id) {
                        return Outcome::Polled(Some(Err(e)));
                    }
                }
                Outcome::Polled((m.status(id) == Status::Granted).then_some(Ok(())))
            }
            Act::DropFuture(id) => {
                if m.status(id) == Status::Granted {
                    m.release(id);
                } else {
                    m.cancel(id);
                }
                Outcome::Done
            }
        }
    }

    fn update_meta(&mut self, act: &Act, outcome: &Outcome) {
        match *act {
            Act::Cancel(id) if self.meta[id].how.callback() => self.meta[id].cancel_used = true,
            Act::Cancel(id) | Act::DropFuture(id) => {
                self.meta[id].future_done = true;
                self.meta[id].future_dropped = true;
            }
            Act::Poll(id) if matches!(outcome, Outcome::Polled(Some(_))) => {
                self.meta[id].future_done = true
            }
            Act::Release(id) if self.meta[id].how == How::Future => {
                self.meta[id].future_done = true
            }
            _ => {}
        }
    }

    /// Ends every set (release what is held, cancel the rest), comparing as it goes, then
    /// checks on both engines that every resource is free.
    fn tear_down(mut self) -> Result<Coverage, String> {
        while let Some(id) = self.ids(|_, _, s| s != Status::Gone).first().copied() {
            let m = &self.meta[id];
            let act = match self.model.status(id) {
                Status::Granted => Act::Release(id),
                _ if m.how == How::Future => Act::DropFuture(id),
                _ => Act::Cancel(id),
            };
            self.step(act)?;
        }
        // Futures resolved with an error or never polled, and cancelled callbacks, hold
        // nothing; drop what is left of them before the final check.
        self.lock_free.sets.clear();
        self.reference.sets.clear();
        let e1 = self.lock_free.all_free();
        let e2 = self.reference.all_free();
        e1.and(e2)
            .map_err(|e| format!("{e}\nsteps: {:#?}", self.log))?;
        // Wakers and callbacks owned handles of their sets' resources: once every handle and
        // set is dropped, no resource may be left alive (a reference cycle, issue 8).
        let e1 = self.lock_free.all_gone();
        let e2 = self.reference.all_gone();
        e1.and(e2)
            .map_err(|e| format!("{e}\nsteps: {:#?}", self.log))?;
        Ok(self.coverage)
    }
}

/// Counts wake-ups of a future. It owns handles of the future's resources, as a task that
/// owns the buffers it waits for does: a waker kept past the grant keeps them alive.
struct WakeCount<E: Engine> {
    wakes: AtomicUsize,
    _owns: ResourceSet<'static, E>,
}

impl<E: Engine> Wake for WakeCount<E> {
    fn wake(self: Arc<Self>) {
        self.wakes.fetch_add(1, SeqCst);
    }
}

/// What a callback did with its grant.
struct Slot<E: Engine> {
    runs: AtomicUsize,
    guard: Mutex<Option<Guard<'static, E>>>,
}

enum Handle<E: Engine> {
    Callback {
        slot: Arc<Slot<E>>,
        /// `None` once used by `cancel`, or when the request was refused.
        pending: Option<Pending<E>>,
        /// `cancel` returned true, or the request was refused.
        cancelled: bool,
    },
    Future {
        fut: Option<Acquire<'static, E>>,
        wakes: Arc<WakeCount<E>>,
        polled: bool,
        guard: Option<Guard<'static, E>>,
    },
    /// A sync set's guard, owned (`into_owned`): the resources may be dropped meanwhile.
    Sync(Option<Guard<'static, E>>),
}

/// One engine driven by the script.
struct Side<E: Engine> {
    resources: Vec<Option<Resource<E>>>,
    /// Every resource ever made, weakly: all must be gone once everything is dropped.
    made: Vec<WeakResource>,
    sets: Vec<Handle<E>>,
    interrupt: Interrupt,
}

impl<E: Engine> Side<E> {
    fn new() -> Self {
        let interrupt = Interrupt::new();
        interrupt.interrupt();
        Side {
            resources: Vec::new(),
            made: Vec::new(),
            sets: Vec::new(),
            interrupt,
        }
    }

    /// The set of `entries`: the first half named through the by-value builder, the rest
    /// added by `Extend` (which merges them into the first half in set order), so both ways
    /// of building, and their mix, are checked.
    fn set_of(
        &self,
        entries: &[(usize, bool)],
        policy: Locked,
    ) -> Result<ResourceSet<'_, E>, String> {
        let mut named = Vec::with_capacity(entries.len());
        for &(r, x) in entries {
            let res = self.resources[r]
                .as_ref()
                .ok_or("named a dropped resource")?;
            named.push((res, if x { Access::Exclusive } else { Access::Shared }));
        }
        let (built, extended) = named.split_at(named.len() / 2);
        let mut set = built
            .iter()
            .fold(ResourceSet::new().locked(policy), |set, &(res, access)| {
                set.access(res, access)
            });
        set.extend(extended.iter().copied());
        Ok(set)
    }

    /// The one-liner of `entries`, `ResourceSet::new().access(..)….try_acquire()`, in the
    /// order named, the guard dropped at once.
    fn one_liner(&self, entries: &[(usize, bool)]) -> Result<Outcome, String> {
        let mut set = ResourceSet::new();
        for &(r, x) in entries {
            let res = self.resources[r]
                .as_ref()
                .ok_or("named a dropped resource")?;
            set = set.access(res, if x { Access::Exclusive } else { Access::Shared });
        }
        Ok(Outcome::Acquired(set.try_acquire().map(drop)))
    }

    fn poll(
        fut: &mut Acquire<'static, E>,
        wakes: &Arc<WakeCount<E>>,
    ) -> Poll<Result<Guard<'static, E>, Error>> {
        let waker = Waker::from(Arc::clone(wakes));
        Pin::new(fut).poll(&mut Context::from_waker(&waker))
    }

    /// Applies `act`; `expected` is the model's outcome (only `LockReleased` reads it).
    fn apply(&mut self, act: &Act, expected: &Outcome) -> Result<Outcome, String> {
        Ok(match *act {
            Act::NewResource => {
                let r = Resource::new();
                self.made.push(WeakResource::new(&r));
                self.resources.push(Some(r));
                Outcome::Done
            }
            Act::DropResource(r) => {
                self.resources[r] = None;
                Outcome::Done
            }
            Act::Request {
                how,
                policy,
                ref entries,
                ..
            } => {
                let set = self.set_of(entries, policy)?;
                let (handle, outcome) = self.request(&set, how, entries, expected)?;
                drop(set);
                self.sets.push(handle);
                outcome
            }
            Act::Release(id) => {
                match &mut self.sets[id] {
                    Handle::Callback { slot, .. } => {
                        let guard = slot.guard.lock().unwrap().take();
                        drop(guard.ok_or("release: the callback holds no guard")?);
                    }
                    Handle::Future {
                        fut, wakes, guard, ..
                    } => {
                        if guard.is_none() {
                            let f = fut.as_mut().ok_or("release: no future")?;
                            match Self::poll(f, wakes) {
                                Poll::Ready(Ok(g)) => *guard = Some(g),
                                other => {
                                    return Err(format!(
                                        "release: a woken future polled {:?}",
                                        other.map(|r| r.map(drop))
                                    ))
                                }
                            }
                            *fut = None;
                        }
                        drop(guard.take());
                    }
                    Handle::Sync(guard) => {
                        drop(guard.take().ok_or("release: no sync guard")?);
                    }
                }
                Outcome::Done
            }
            Act::Cancel(id) => match &mut self.sets[id] {
                Handle::Callback {
                    pending, cancelled, ..
                } => match pending.take() {
                    Some(p) => {
                        let c = p.cancel();
                        *cancelled = c;
                        Outcome::Cancelled(c)
                    }
                    // Refused at request time: the model cancels a gone set with `false`.
                    None => Outcome::Cancelled(false),
                },
                Handle::Future { fut, .. } => {
                    drop(fut.take());
                    Outcome::Done
                }
                Handle::Sync(_) => return Err("cancel of a sync set".into()),
            },
            Act::Poll(id) => {
                let Handle::Future {
                    fut,
                    wakes,
                    polled,
                    guard,
                } = &mut self.sets[id]
                else {
                    return Err("poll of a non-future".into());
                };
                let f = fut.as_mut().ok_or("poll of a finished future")?;
                *polled = true;
                match Self::poll(f, wakes) {
                    Poll::Pending => Outcome::Polled(None),
                    Poll::Ready(r) => {
                        *fut = None;
                        Outcome::Polled(Some(r.map(|g| *guard = Some(g))))
                    }
                }
            }
            Act::DropFuture(id) => {
                let Handle::Future { fut, guard, .. } = &mut self.sets[id] else {
                    return Err("drop of a non-future".into());
                };
                drop(fut.take());
                drop(guard.take());
                Outcome::Done
            }
        })
        .and_then(|o| self.invariants().map(|()| o))
    }

    /// Requests `set` (made of `entries`) the way `how` says; `expected` is the model's
    /// outcome, which `LockReleased` follows to stay clear of blocking.
    fn request(
        &self,
        set: &ResourceSet<'_, E>,
        how: How,
        entries: &[(usize, bool)],
        expected: &Outcome,
    ) -> Result<(Handle<E>, Outcome), String> {
        let acquired = |r: Result<Guard<'_, E>, Error>| match r {
            Ok(g) => (
                Handle::Sync(Some(g.into_owned())),
                Outcome::Acquired(Ok(())),
            ),
            Err(e) => (Handle::Sync(None), Outcome::Acquired(Err(e))),
        };
        Ok(match how {
            How::Callback | How::CallbackReleasing => {
                let slot = Arc::new(Slot {
                    runs: AtomicUsize::new(0),
                    guard: Mutex::new(None),
                });
                let s = Arc::clone(&slot);
                let keep = how == How::Callback;
                // The closure owns handles of its set's resources (see `WakeCount`).
                let owns = set.clone().into_owned();
                let r = set.on_grant(Dispatch::Direct, move |g| {
                    let _owns = owns;
                    s.runs.fetch_add(1, SeqCst);
                    if keep {
                        *s.guard.lock().unwrap() = Some(g);
                    }
                });
                let outcome = match &r {
                    Ok(_) => Outcome::Done,
                    Err(e) => Outcome::Refused(*e),
                };
                let cancelled = r.is_err();
                let handle = Handle::Callback {
                    slot,
                    pending: r.ok(),
                    cancelled,
                };
                (handle, outcome)
            }
            How::Future => (
                Handle::Future {
                    fut: Some(set.clone().into_owned().acquire()),
                    wakes: Arc::new(WakeCount {
                        wakes: AtomicUsize::new(0),
                        _owns: set.clone().into_owned(),
                    }),
                    polled: false,
                    guard: None,
                },
                Outcome::Done,
            ),
            How::TryAcquire => acquired(set.try_acquire()),
            How::WaitTimeout => acquired(set.wait_timeout(Duration::ZERO)),
            How::WaitInterrupted => acquired(set.wait_interruptible(None, &self.interrupt)),
            How::WaitMaxInterrupted => {
                acquired(set.wait_interruptible(Some(Duration::MAX), &self.interrupt))
            }
            How::WaitNanos => acquired(set.wait_timeout(Duration::from_nanos(1))),
            How::OneLinerReleased => (Handle::Sync(None), self.one_liner(entries)?),
            How::LockReleased => {
                let r = if *expected == Outcome::Acquired(Ok(())) {
                    set.lock().map(drop)
                } else {
                    set.try_acquire().map(drop)
                };
                (Handle::Sync(None), Outcome::Acquired(r))
            }
        })
    }

    /// Checks that hold after every step whatever the model says.
    fn invariants(&self) -> Result<(), String> {
        for (id, h) in self.sets.iter().enumerate() {
            if let Handle::Callback { slot, pending, .. } = h {
                let runs = slot.runs.load(SeqCst);
                if runs > 1 {
                    return Err(format!("set {id}: callback ran {runs} times"));
                }
                if let Some(p) = pending {
                    if p.is_granted() != (runs == 1) {
                        return Err(format!(
                            "set {id}: is_granted() = {} but the direct callback ran {runs} times",
                            p.is_granted()
                        ));
                    }
                }
            }
            if let Handle::Future { wakes, .. } = h {
                if wakes.wakes.load(SeqCst) > 1 {
                    return Err(format!("set {id}: future woken more than once"));
                }
            }
        }
        Ok(())
    }

    fn statuses(&self) -> Result<Vec<Status>, String> {
        self.sets
            .iter()
            .map(|h| {
                Ok(match h {
                    Handle::Callback {
                        slot, cancelled, ..
                    } => {
                        let ran = slot.runs.load(SeqCst) > 0;
                        if ran && *cancelled {
                            return Err("a cancelled callback ran".into());
                        }
                        if *cancelled {
                            Status::Gone
                        } else if !ran {
                            Status::Queued
                        } else if slot.guard.lock().unwrap().is_some() {
                            Status::Granted
                        } else {
                            Status::Gone
                        }
                    }
                    Handle::Future {
                        fut,
                        wakes,
                        polled,
                        guard,
                    } => match (fut, guard) {
                        (_, Some(_)) => Status::Granted,
                        (None, None) => Status::Gone,
                        (Some(_), None) if !polled => Status::Unqueued,
                        (Some(_), None) if wakes.wakes.load(SeqCst) > 0 => Status::Granted,
                        (Some(_), None) => Status::Queued,
                    },
                    Handle::Sync(g) => {
                        if g.is_some() {
                            Status::Granted
                        } else {
                            Status::Gone
                        }
                    }
                })
            })
            .collect()
    }

    /// Every live resource can be taken exclusively, all at once, right now.
    fn all_free(&self) -> Result<(), String> {
        let mut set = ResourceSet::<E>::new();
        for r in self.resources.iter().flatten() {
            set = set.exclusive(r);
        }
        match set.try_acquire() {
            Ok(_) => Ok(()),
            Err(e) => Err(format!(
                "{}: resources not free at the end ({e}): {:?}",
                E::NAME,
                self.resources
            )),
        }
    }
}

impl<E: Engine> Side<E> {
    /// Drops every handle, then checks that every resource ever made is gone.
    fn all_gone(&mut self) -> Result<(), String> {
        self.resources.clear();
        self.sets.clear();
        crate::wait_all_gone(&self.made).map_err(|alive| {
            format!(
                "{}: resources {alive:?} still alive after every handle and set was dropped (a cycle)",
                E::NAME
            )
        })
    }
}

impl fmt::Display for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} initial resources", self.initial_resources)?;
        for op in &self.ops {
            writeln!(f, "{op:?}")?;
        }
        Ok(())
    }
}
