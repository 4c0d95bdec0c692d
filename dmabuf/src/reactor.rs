//! The reactor: one thread, one `epoll` over the sync files of every request that holds its
//! kds grant and waits for fences. When the last sync file of a request turns readable, the
//! reactor runs the request's `ready` closure (which delivers the grant); `cancel` takes a
//! request's closure back before that.
//!
//! Each sync file is registered once (`EPOLLONESHOT`) under a key of its own; once it fires
//! it is removed from the epoll set and closed. A registration is always removed with
//! `EPOLL_CTL_DEL` before its descriptor is closed (a duplicate of the same open file, which
//! a simulated fence is, would otherwise stay in the set). Closures run outside the lock, so
//! they may request, cancel and release sets, which calls back into the reactor.

use crate::error::Error;
use rustix::event::epoll;
use rustix::io::Errno;
use std::cell::Cell;
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

/// What runs once all of a request's fences have signalled. It is handed the request's
/// [`Delivering`] token, to drop once the delivery is done (or to move into the job that
/// does it, on a worker or the pool).
pub(crate) type Ready = Box<dyn FnOnce(Delivering) + Send>;

/// A request on its way to its client; while any exists the reactor is [`busy`]
/// (Reactor::busy). Dropping it ends the request's part in that.
pub(crate) struct Delivering(&'static Reactor);

impl Drop for Delivering {
    fn drop(&mut self) {
        // SeqCst: see `Reactor::busy`.
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The process's reactor; started by the first request that must wait for a fence.
pub(crate) struct Reactor {
    epoll: OwnedFd,
    state: Mutex<State>,
    /// Requests between `watch` and the end of their `ready` closure (or their cancel):
    /// while any is, a grant that is ready at once goes through the reactor too, behind them
    /// (see [`Reactor::busy`]).
    in_flight: AtomicUsize,
}

#[derive(Default)]
struct State {
    /// The next token and the next sync-file key (both only grow: never reused).
    next: u64,
    /// The waiting requests, by token.
    waits: HashMap<u64, Wait>,
    /// Every registered sync file: its key's request and descriptor.
    files: HashMap<u64, (u64, OwnedFd)>,
}

struct Wait {
    /// The keys of its sync files still registered.
    keys: Vec<u64>,
    ready: Ready,
}

/// The process's reactor, once its epoll descriptor exists; `RUNNING` once its thread does;
/// `STARTING` serialises starts (a failed one leaves the next caller to try again).
static REACTOR: OnceLock<Reactor> = OnceLock::new();
static RUNNING: OnceLock<()> = OnceLock::new();
static STARTING: Mutex<()> = Mutex::new(());

std::thread_local! {
    /// Set on the reactor thread: a wait there cannot count on the reactor to wake it.
    static ON_REACTOR: Cell<bool> = const { Cell::new(false) };
}

/// Whether this is the reactor thread (running a callback it delivered).
pub(crate) fn on_reactor_thread() -> bool {
    ON_REACTOR.with(|on| on.get())
}

/// A request's registration, to [`cancel`](Reactor::cancel) it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Token(u64);

impl Reactor {
    /// The reactor, started on first use. [`Error::Io`] if the system refuses its epoll
    /// descriptor or its thread now (out of descriptors, of threads); nothing is kept of a
    /// failed start, so a later request tries again.
    pub(crate) fn get() -> Result<&'static Reactor, Error> {
        if let (Some(r), Some(())) = (REACTOR.get(), RUNNING.get()) {
            return Ok(r);
        }
        let _starting = STARTING.lock().unwrap_or_else(|e| e.into_inner());
        let r = match REACTOR.get() {
            Some(r) => r,
            None => {
                let epoll = epoll::create(epoll::CreateFlags::CLOEXEC).map_err(Error::Io)?;
                REACTOR.get_or_init(|| Reactor {
                    epoll,
                    state: Mutex::new(State::default()),
                    in_flight: AtomicUsize::new(0),
                })
            }
        };
        if RUNNING.get().is_none() {
            std::thread::Builder::new()
                .name("kds-dmabuf-reactor".into())
                .spawn(move || {
                    ON_REACTOR.with(|on| on.set(true));
                    r.run()
                })
                .map_err(|e| Error::Io(Errno::from_io_error(&e).unwrap_or(Errno::AGAIN)))?;
            let _ = RUNNING.set(());
        }
        Ok(r)
    }

    /// The reactor if it has been started (for counts that must not start it).
    pub(crate) fn started() -> Option<&'static Reactor> {
        REACTOR.get()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `ready` on the reactor thread once every descriptor in `files` is readable
    /// (at once if they already are). On error nothing is registered and `ready` comes
    /// back, with the descriptors closed. An empty `files` is such an error (`EINVAL`): there
    /// is nothing to wait for, and the caller, which may hold a lock that `ready` takes,
    /// delivers itself.
    pub(crate) fn watch(&self, files: Vec<OwnedFd>, ready: Ready) -> Result<Token, (Error, Ready)> {
        if files.is_empty() {
            return Err((Error::Io(Errno::INVAL), ready));
        }
        let mut st = self.lock();
        let token = st.next;
        st.next += 1;
        let mut keys = Vec::with_capacity(files.len());
        for fd in files {
            let key = st.next;
            st.next += 1;
            let flags = epoll::EventFlags::IN | epoll::EventFlags::ONESHOT;
            if let Err(e) = epoll::add(&self.epoll, &fd, epoll::EventData::new_u64(key), flags) {
                for k in keys {
                    self.unregister(&mut st, k);
                }
                return Err((Error::Io(e), ready));
            }
            st.files.insert(key, (token, fd));
            keys.push(key);
        }
        st.waits.insert(token, Wait { keys, ready });
        // SeqCst: `busy` on another thread must see this request before it can overtake it.
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        Ok(Token(token))
    }

    /// Whether some request is between `watch` and the end of its delivery (its callback
    /// started: on a worker, not merely queued there). A grant whose
    /// fences are ready at once must then not be delivered past it: it goes through the
    /// reactor as well, with a descriptor that is readable at once ([`ready_now`]), and epoll
    /// reports it after every file that turned readable before it was added. So a worker's
    /// callbacks run in the order their sets became ready (kds's grant order).
    pub(crate) fn busy(&self) -> bool {
        // SeqCst: pairs with the increments and decrements around each request.
        self.in_flight.load(Ordering::SeqCst) > 0
    }

    /// Takes a request's registration back before its fences signal: `Some(ready)` (for the
    /// caller to drop, outside any lock of its own that `ready`'s drop might need), its sync
    /// files closed. `None`: too late, `ready` runs or has run.
    pub(crate) fn cancel(&self, token: Token) -> Option<Ready> {
        let mut st = self.lock();
        let wait = st.waits.remove(&token.0)?;
        for k in wait.keys {
            self.unregister(&mut st, k);
        }
        // SeqCst: see `busy`.
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        Some(wait.ready)
    }

    /// How many requests wait for fences, and how many sync files they hold open (the
    /// bookkeeping the tests check for leaks).
    pub(crate) fn counts(&self) -> (usize, usize) {
        let st = self.lock();
        (st.waits.len(), st.files.len())
    }

    fn unregister(&self, st: &mut State, key: u64) {
        if let Some((_, fd)) = st.files.remove(&key) {
            // Can fail only if it is not registered, which a key in `files` always is.
            let _ = epoll::delete(&self.epoll, &fd);
        }
    }

    /// The reactor thread: waits for sync files, runs the closures of requests whose last
    /// one fired.
    fn run(&'static self) {
        let mut events: Vec<epoll::Event> = Vec::with_capacity(64);
        let mut fired: Vec<Ready> = Vec::new();
        loop {
            events.clear();
            match epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(&mut events),
                None,
            ) {
                Ok(_) => {}
                Err(Errno::INTR) => continue,
                Err(_) => {
                    // EBADF / EINVAL cannot happen on our own epoll descriptor; do not spin.
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    continue;
                }
            }
            {
                let mut st = self.lock();
                for ev in &events {
                    let key = ev.data.u64();
                    let Some(&(token, _)) = st.files.get(&key) else {
                        continue; // cancelled meanwhile
                    };
                    self.unregister(&mut st, key);
                    let done = match st.waits.get_mut(&token) {
                        Some(w) => {
                            w.keys.retain(|k| *k != key);
                            w.keys.is_empty()
                        }
                        None => false,
                    };
                    if done {
                        if let Some(w) = st.waits.remove(&token) {
                            fired.push(w.ready);
                        }
                    }
                }
            }
            for ready in fired.drain(..) {
                run_contained(ready, Delivering(self));
            }
        }
    }
}

/// A descriptor that is readable at once (an eventfd holding 1): the stand-in fence of a
/// grant routed through a busy reactor only to keep its place in the delivery order.
pub(crate) fn ready_now() -> Result<OwnedFd, Error> {
    rustix::event::eventfd(1, rustix::event::EventfdFlags::CLOEXEC).map_err(Error::Io)
}

/// Runs a closure on the reactor thread, which must outlive any one request's panic.
fn run_contained(ready: Ready, delivering: Delivering) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(move || ready(delivering))) {
        if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
            std::mem::forget(again);
        }
    }
}
