//! [`Interrupt`]: what a kernel signal is to `kds_waitall`, for user-space threads.

use crate::sync::{thread, Arc, AtomicBool, Mutex, Ordering, Thread};
use std::fmt;

/// A latch that breaks `wait_interruptible` out of its wait with
/// [`Error::Interrupted`](crate::Error::Interrupted).
///
/// Clone it to hand it to another thread. Once [`interrupt`](Interrupt::interrupt)ed it stays
/// interrupted (like a pending signal) until [`clear`](Interrupt::clear)ed; a wait that starts
/// while it is set and cannot be granted at once returns `Interrupted` at once.
///
/// The waiter list is behind a small mutex: it is touched only by waits that use this
/// interrupt, never by the engine's grant path.
///
/// ```
/// use kds::{Error, Interrupt, Resource, ResourceSet};
///
/// let buffer = Resource::new();
/// let held = ResourceSet::new().exclusive(&buffer).wait()?;
/// let int = Interrupt::new();
/// int.interrupt(); // fired before the wait: a wait that would block returns at once
/// let r = ResourceSet::new().exclusive(&buffer).wait_interruptible(None, &int);
/// assert_eq!(r.unwrap_err(), Error::Interrupted);
/// int.clear();
/// assert!(!int.is_interrupted());
/// drop(held);
/// # Ok::<(), kds::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct Interrupt {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    fired: AtomicBool,
    waiters: Mutex<Vec<Thread>>,
}

impl Interrupt {
    /// A new, not yet fired, interrupt.
    pub fn new() -> Interrupt {
        Interrupt::default()
    }

    /// Fire: every wait on this interrupt returns `Interrupted` (unless granted first).
    pub fn interrupt(&self) {
        // SeqCst: pairs with the SeqCst load in `is_interrupted` after a waiter registers.
        self.inner.fired.store(true, Ordering::SeqCst);
        let waiters = self.inner.waiters.lock().unwrap_or_else(|e| e.into_inner());
        for t in waiters.iter() {
            t.unpark();
        }
    }

    /// Whether it has fired and not been cleared.
    pub fn is_interrupted(&self) -> bool {
        self.inner.fired.load(Ordering::SeqCst)
    }

    /// Reset to not fired.
    pub fn clear(&self) {
        self.inner.fired.store(false, Ordering::SeqCst);
    }

    /// Makes [`interrupt`](Interrupt::interrupt) unpark the calling thread until the returned
    /// registration is dropped: for a wait built outside kds that parks its thread
    /// (`std::thread::park`) and checks [`is_interrupted`](Interrupt::is_interrupted) when it
    /// wakes, as `kds-dmabuf`'s wait for a buffer's fences does. Register before the first
    /// check: an `interrupt` after the registration unparks the thread (so its next `park`
    /// returns at once), and one before it is seen by that check.
    ///
    /// ```
    /// use kds::Interrupt;
    /// use std::time::Duration;
    ///
    /// let int = Interrupt::new();
    /// let firing = int.clone();
    /// let interrupter = std::thread::spawn(move || firing.interrupt());
    /// let _registered = int.unpark_on_interrupt();
    /// while !int.is_interrupted() {
    ///     std::thread::park_timeout(Duration::from_secs(10)); // or some other wake-up
    /// }
    /// interrupter.join().unwrap();
    /// ```
    pub fn unpark_on_interrupt(&self) -> UnparkOnInterrupt<'_> {
        let me = thread::current();
        self.register(&me);
        UnparkOnInterrupt {
            interrupt: self,
            thread: me,
        }
    }

    /// Register the current thread to be unparked by `interrupt`. The registration is taken
    /// under the waiter mutex, so an `interrupt` after it either sees the thread or happened
    /// before the caller's next `is_interrupted` check.
    pub(crate) fn register(&self, me: &Thread) {
        let mut waiters = self.inner.waiters.lock().unwrap_or_else(|e| e.into_inner());
        waiters.push(me.clone());
    }

    pub(crate) fn unregister(&self, me: &Thread) {
        let mut waiters = self.inner.waiters.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = waiters.iter().position(|t| t.id() == me.id()) {
            waiters.swap_remove(i);
        }
    }
}

/// The registration of [`Interrupt::unpark_on_interrupt`]; dropping it unregisters the thread.
#[must_use = "the thread is unregistered when this is dropped"]
pub struct UnparkOnInterrupt<'a> {
    interrupt: &'a Interrupt,
    thread: Thread,
}

impl Drop for UnparkOnInterrupt<'_> {
    fn drop(&mut self) {
        self.interrupt.unregister(&self.thread);
    }
}

impl fmt::Debug for UnparkOnInterrupt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnparkOnInterrupt").finish_non_exhaustive()
    }
}

impl fmt::Debug for Interrupt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interrupt")
            .field("interrupted", &self.is_interrupted())
            .finish()
    }
}
