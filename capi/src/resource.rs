//! `struct kds_resource`: caller-owned storage for one [`kds::Resource`] handle.
//!
//! The C struct is `void *kds_private_[KDS_RESOURCE_PRIVATE_WORDS]`; this module's
//! [`kds_resource`] is the same size and alignment (asserted below): a marker word that says
//! whether the storage holds a live handle, then room for the handle itself, written in place.
//! The marker lets a zero-filled or terminated struct be refused with `-EINVAL` instead of
//! being read as a handle. (Storage that is neither initialized nor zeroed is undefined
//! behaviour, as in C.)

use crate::abi::{no_unwind, EBUSY, EFAULT, EINVAL, RESOURCE_WORDS};
use crate::releasing;
use std::ffi::c_int;
use std::mem::{align_of, size_of, ManuallyDrop, MaybeUninit};
use std::ptr::addr_of_mut;

/// Marker of a struct that holds a live handle ("kdsR").
const LIVE: usize = 0x6b64_7352;
/// Marker written by `kds_resource_term` ("kdsr").
const DEAD: usize = 0x6b64_7372;

/// `struct kds_resource`: embed it by value, initialize it with `kds_resource_init`.
#[repr(C)]
pub struct kds_resource {
    /// [`LIVE`] while `handle` holds a `kds::Resource`.
    marker: usize,
    /// Storage for one `kds::Resource` (asserted to fit).
    handle: [MaybeUninit<usize>; RESOURCE_WORDS - 1],
}

const _: () = {
    // The C declaration: RESOURCE_WORDS pointers.
    assert!(size_of::<kds_resource>() == RESOURCE_WORDS * size_of::<*mut ()>());
    assert!(align_of::<kds_resource>() == align_of::<*mut ()>());
    // The handle fits the storage, and the storage is aligned enough for it.
    assert!(size_of::<kds::Resource>() <= (RESOURCE_WORDS - 1) * size_of::<usize>());
    assert!(align_of::<kds::Resource>() <= align_of::<usize>());
};

/// The handle stored in `*resource`, or the errno for why there is none.
///
/// # Safety
///
/// `resource` is NULL or points to a `struct kds_resource` that was initialized (or
/// zero-filled, or terminated) and is not being initialized or terminated concurrently; the
/// returned reference is used only while that stays so.
pub(crate) unsafe fn handle<'a>(resource: *const kds_resource) -> Result<&'a kds::Resource, c_int> {
    if resource.is_null() {
        return Err(EFAULT);
    }
    // SAFETY: non-null, and by the caller's contract a readable `struct kds_resource`.
    let marker = unsafe { (*resource).marker };
    if marker != LIVE {
        return Err(EINVAL);
    }
    // SAFETY: LIVE means `kds_resource_init` wrote a `kds::Resource` at the start of
    // `handle` (size and alignment asserted above), and no `kds_resource_term` has dropped it.
    Ok(unsafe { &*((*resource).handle.as_ptr() as *const kds::Resource) })
}

/// `void kds_resource_init(struct kds_resource *resource)`: make `*resource` a new, free
/// resource. NULL is ignored.
///
/// # Safety
///
/// `resource` is NULL or points to writable storage of a `struct kds_resource` that no other
/// thread uses during the call. Initializing a live resource again leaks its old handle.
#[no_mangle]
pub unsafe extern "C" fn kds_resource_init(resource: *mut kds_resource) {
    no_unwind((), || {
        if resource.is_null() {
            return;
        }
        // SAFETY: `resource` is valid for writes (caller's contract); the storage is big and
        // aligned enough for a `kds::Resource` (asserted above). Raw writes: the old contents
        // may be uninitialized.
        unsafe {
            let slot = addr_of_mut!((*resource).handle) as *mut kds::Resource;
            slot.write(kds::Resource::new());
            addr_of_mut!((*resource).marker).write(LIVE);
        }
    })
}

/// `int kds_resource_term(struct kds_resource *resource)`: forget the resource. 0: it was
/// free, and is freed. `-EBUSY`: sets still hold it or wait for it; it is terminated all the
/// same, and freed when the last of them is released (see [`term`]). Either way the caller
/// may free the struct's memory at once: the library keeps no pointer into it. `-EINVAL` for
/// a zero-filled or already terminated struct and `-EFAULT` for NULL, which are otherwise
/// ignored. (The seed asserted that nothing used the resource; the later kernel answered
/// `-EBUSY` and left it alone.)
///
/// # Safety
///
/// `resource` is NULL or points to a `struct kds_resource` that was initialized (or
/// zero-filled, or terminated), that no other thread uses during the call.
#[no_mangle]
pub unsafe extern "C" fn kds_resource_term(resource: *mut kds_resource) -> c_int {
    no_unwind(-EFAULT, || {
        if resource.is_null() {
            return -EFAULT;
        }
        // SAFETY: valid and exclusively ours during the call (caller's contract).
        unsafe {
            if (*resource).marker != LIVE {
                return -EINVAL;
            }
            (*resource).marker = DEAD;
            let slot = addr_of_mut!((*resource).handle) as *mut kds::Resource;
            // LIVE meant a handle was written there and not yet taken; the marker is already
            // DEAD, so it is taken exactly once.
            term(slot.read())
        }
    })
}

/// Drops the C struct's handle of a terminated resource once that is safe, and answers
/// `kds_resource_term`: 0 if the resource was free, `-EBUSY` if not.
///
/// Sets granted at once borrow their resources from the C structs without a count
/// (`set::build_in`), so a resource must outlive every such hold, including the tail of its
/// release, which may still read the resource after giving it up. So the handle is dropped
/// only after (1) this thread has been granted the resource exclusively, so that nothing
/// holds it or waits for it, and then (2) every release that was running on another thread
/// at that moment has finished its engine part ([`releasing`]). No new borrowed hold can
/// start meanwhile: the struct is already `DEAD`, and the C contract forbids a request naming
/// it during this call.
///
/// A free resource is granted by an exclusive `try_acquire` here and now. A busy one gets an
/// exclusive request queued behind everything that holds it or waits for it, whose direct
/// callback drops the handle: it runs on the thread whose release (or cancel) completes that
/// grant, after the release, with no later call needed. Each term does a constant amount of
/// work (a try, or one request), whatever else is in use; nothing is kept in a list and
/// retried. The wait of (2) is for the engine's steps on other threads (usually none), never
/// for a callback.
fn term(handle: kds::Resource) -> c_int {
    let free = match kds::ResourceSet::new().exclusive(&handle).try_acquire() {
        Ok(grant) => {
            drop(grant);
            true
        }
        Err(_) => false,
    };
    if free {
        free_after_releases(handle);
        return 0;
    }
    let last = kds::ResourceSet::new().exclusive(&handle).into_owned();
    let kept = Kept(ManuallyDrop::new(handle));
    let queued = last.on_grant(kds::Dispatch::Direct, move |grant| {
        drop(grant);
        let mut kept = kept;
        // SAFETY: taken once, here; `Kept`'s own drop never drops the handle.
        free_after_releases(unsafe { ManuallyDrop::take(&mut kept.0) });
    });
    // A `Pending` dropped does not cancel its request. A Wait request with a direct callback
    // has no error to meet; if one came, the closure (and the handle it keeps) is gone
    // without a free: a leak, never a free under a holder.
    drop(queued);
    -EBUSY
}

/// The handle of a terminated, busy resource, kept by the request that frees it. Dropped
/// without being taken (a request that never runs its callback), it leaks the handle rather
/// than free the resource under a holder.
struct Kept(ManuallyDrop<kds::Resource>);

/// Drops `handle` once every release running on another thread now has finished its engine
/// part (after this thread's exclusive grant of the resource: [`term`]).
fn free_after_releases(handle: kds::Resource) {
    releasing::in_flight().wait();
    drop(handle);
}
