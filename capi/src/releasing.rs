//! Which threads are inside a release right now, so that `kds_resource_term` frees a resource
//! only after every release that may still read it has finished.
//!
//! A C set granted at once borrows its resources from the C structs without a count
//! (`set::build_in`), and a release may read a resource after giving it up (the engine's
//! scan of the links queued behind it). So a resource may be freed (`resource::term`) only
//! when (1) nothing holds it or waits for it and (2) no release that gave it up is still
//! reading it.
//!
//! (1) is the terminating thread T's own exclusive grant of the resource: its `try_acquire`,
//! or the last request it queued behind the resource's users. (2) is this module: each thread
//! has a sequence word in a registry; a release makes it odd before it starts and even again
//! once the engine has given every resource back and finished its scans ([`released`]): two
//! stores, no read-modify-write (a plain `mov` each on x86). The word is even again *before*
//! the grants the release made are delivered ([`kds::Guard::release_then`]), so it is odd only
//! while engine code runs, never while a callback does: a wait for the word to move on is
//! bounded by the engine's own steps, which never block.
//!
//! The ordering comes from the engine's own atomics: a release gives a resource up with an
//! `AcqRel` RMW on its gate word (every write to that word is an RMW), and T's grant reads a
//! later value of it with `Acquire` (on the fast path, its own hold's CAS; on the queued way,
//! its `reserve`, or else the scan that granted it, which read the gate after the release), so
//! T sees the releaser's odd value (or a later one) when it reads the words afterwards
//! ([`in_flight`]). T then keeps the resource until each word it saw odd has moved on
//! ([`Snapshot::wait`]): every store to a word is a `Release` store, and each one after the
//! release T saw was made after that release's engine part ended, so T's `Acquire` read of any
//! later value orders every access of that release before the free.
//!
//! This replaced pinning crossbeam-epoch around every release (the same guarantee, but a
//! locked read-modify-write and its bookkeeping on every C release: 10 to 25 ns of a 45 to
//! 75 ns call; `docs/c-api.md`, "Benchmarks from C").

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Every live thread's sequence word (a thread that has released at least once).
static WORDS: Mutex<Vec<Arc<AtomicU64>>> = Mutex::new(Vec::new());

/// This thread's word, registered in [`WORDS`] on first use and removed when the thread ends.
struct Mine(Arc<AtomicU64>);

impl Mine {
    fn new() -> Mine {
        let word = Arc::new(AtomicU64::new(0));
        lock_words().push(Arc::clone(&word));
        Mine(word)
    }
}

impl Drop for Mine {
    fn drop(&mut self) {
        // Even here: no release of this thread is running once its locals are destroyed.
        lock_words().retain(|w| !Arc::ptr_eq(w, &self.0));
    }
}

thread_local! {
    static MINE: Mine = Mine::new();
}

fn lock_words() -> std::sync::MutexGuard<'static, Vec<Arc<AtomicU64>>> {
    // A panic while the registry was locked leaves it consistent (a push or a retain).
    WORDS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Releases the set in `guard` (if any), leaving `None`, marked as a running release in this
/// thread's word until the engine has given it back (module docs). Every C set's guard is
/// released this way (`set.rs`).
#[inline]
pub(crate) fn released(guard: &mut Option<kds::Guard<'static>>) {
    if guard.is_none() {
        return;
    }
    match MINE.try_with(|mine| Arc::as_ptr(&mine.0)) {
        // SAFETY: this thread's `MINE` keeps the word alive until its locals are destroyed,
        // which cannot happen during this call on this thread (`try_with` answered: not yet).
        Ok(word) => mark(unsafe { &*word }, guard),
        Err(_) => {
            // A C call from another thread-local's destructor: a word of its own for this one
            // release, registered like a thread's.
            let word = Arc::new(AtomicU64::new(0));
            lock_words().push(Arc::clone(&word));
            mark(&word, guard);
            lock_words().retain(|w| !Arc::ptr_eq(w, &word));
        }
    }
}

/// Releases the guard in `guard` with `word` odd during the engine's part of it (only this
/// thread writes `word`).
#[inline(always)]
fn mark(word: &AtomicU64, guard: &mut Option<kds::Guard<'static>>) {
    // Relaxed: only this thread writes its word. `| 1`: a word is odd only inside the engine,
    // which runs no C code, so it is even here (but a stuck odd word must not stay so).
    let seq = word.load(Ordering::Relaxed) | 1;
    // Release, not only for the gate RMWs that follow (whose Release half orders this store
    // before a terminating thread that acquires the gate later, module docs): a reader that
    // sees this odd value of a *later* release must also see the end of every earlier one
    // (a plain store does not continue the earlier Release store's release sequence).
    word.store(seq, Ordering::Release);
    // Ends the release even if it unwinds (a caught panic must not leave the word odd, which
    // would hold up every `kds_resource_term` that waits for it).
    let end = End(word);
    // In place (a guard is a set's size: a move is a copy of it). The word goes even once the
    // engine is done, before the grants are delivered: a callback that this release runs is no
    // part of it.
    kds::Guard::release_then(guard, move || drop(end));
}

/// Makes a word even again, past any value it had: the end of a release.
struct End<'a>(&'a AtomicU64);

impl Drop for End<'_> {
    #[inline]
    fn drop(&mut self) {
        // Relaxed: only this thread writes its word.
        let now = self.0.load(Ordering::Relaxed);
        // Release: every access of the release happens before a reader that sees this value.
        self.0.store((now | 1) + 1, Ordering::Release);
    }
}

/// Releases of other threads running now: their words, each with the odd value it had.
pub(crate) struct Snapshot(Vec<(Arc<AtomicU64>, u64)>);

/// The releases running now on other threads than this one. Call it after this thread's
/// own exclusive grant of the resource to be freed (module docs). This thread's own word is
/// left out: it is even whenever C code (a term, or a callback) runs on this thread.
pub(crate) fn in_flight() -> Snapshot {
    let me = MINE.try_with(|m| Arc::as_ptr(&m.0)).ok();
    let words = lock_words();
    let running = words
        .iter()
        .filter(|w| Some(Arc::as_ptr(w)) != me)
        .filter_map(|w| {
            // Acquire: see the odd value of a release whose gate RMW we acquired (or later).
            let seq = w.load(Ordering::Acquire);
            (seq & 1 == 1).then(|| (Arc::clone(w), seq))
        })
        .collect();
    Snapshot(running)
}

impl Snapshot {
    /// Whether every release in the snapshot has finished (its word moved on: every later
    /// value, odd or even, is a Release store made after that release's engine part ended).
    pub(crate) fn finished(&mut self) -> bool {
        // Acquire: pairs with those Release stores.
        self.0.retain(|(w, seq)| w.load(Ordering::Acquire) == *seq);
        self.0.is_empty()
    }

    /// Waits until [`finished`](Self::finished). Each word it waits for is odd only while
    /// another thread runs the engine's part of a release, which never blocks (module docs):
    /// usually the snapshot is empty, else the wait lasts a scan. It spins briefly, then
    /// yields, then sleeps in short steps (a thread preempted inside a release).
    pub(crate) fn wait(mut self) {
        let mut tries = 0u32;
        while !self.finished() {
            tries += 1;
            if tries < 64 {
                std::hint::spin_loop();
            } else if tries < 1024 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(std::time::Duration::from_micros(50));
            }
        }
    }
}
