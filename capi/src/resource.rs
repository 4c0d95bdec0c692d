//! `struct kds_resource`: caller-owned storage for one [`kds::Resource`] handle.
//!
//! The C struct is `void *kds_private_[KDS_RESOURCE_PRIVATE_WORDS]`; this module's
//! [`kds_resource`] is the same size and alignment (asserted below): a marker word that says
//! whether the storage holds a live handle, then room for the handle itself, written in place.
//! The marker lets a zero-filled or terminated struct be refused with `-EINVAL` instead of
//! being read as a handle. (Storage that is neither initialized nor zeroed is undefined
//! behaviour, as in C.)

use crate::abi::{no_unwind, EFAULT, EINVAL, RESOURCE_WORDS};
use crate::releasing::{self, Snapshot};
use std::ffi::c_int;
use std::mem::{align_of, size_of, MaybeUninit};
use std::ptr::addr_of_mut;
use std::sync::Mutex;

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

/// `void kds_resource_term(struct kds_resource *resource)`: forget the resource. Unlike the
/// seed (which asserted that nothing used it), terminating a resource that sets still hold or
/// wait for is safe: it stays allocated until they are released (see [`term`]). NULL, a
/// terminated or a zero-filled struct is ignored.
///
/// # Safety
///
/// `resource` is NULL or points to a `struct kds_resource` that was initialized (or
/// zero-filled, or terminated), that no other thread uses during the call.
#[no_mangle]
pub unsafe extern "C" fn kds_resource_term(resource: *mut kds_resource) {
    no_unwind((), || {
        if resource.is_null() {
            return;
        }
        // SAFETY: valid and exclusively ours during the call (caller's contract).
        unsafe {
            if (*resource).marker != LIVE {
                return;
            }
            (*resource).marker = DEAD;
            let slot = addr_of_mut!((*resource).handle) as *mut kds::Resource;
            // LIVE meant a handle was written there and not yet taken; the marker is already
            // DEAD, so it is taken exactly once.
            term(slot.read());
        }
    })
}

/// Resources terminated while in use, kept until a later `term` finds them free, each with
/// the releases it still waits for once it was found free.
static IN_USE: Mutex<Vec<(kds::Resource, Option<Snapshot>)>> = Mutex::new(Vec::new());

/// Drops the C struct's handle of a terminated resource, once that is safe.
///
/// Sets granted at once borrow their resources from the C structs without a count
/// (`set::build_in`), so a resource must outlive every such hold, including the tail of its
/// release, which may still read the resource after giving it up. Hence a terminated
/// resource is kept in [`IN_USE`] until (1) something finds it free (an exclusive
/// `try_acquire` succeeds: nothing holds it or waits for it) and then (2) every release that
/// was running on another thread at that moment has finished ([`crate::releasing`]). No new
/// borrowed hold can start meanwhile: the struct is already `DEAD`, and the C contract forbids
/// a request on it during this call. Nothing here waits: each call checks every kept
/// resource again, so one terminated while in use is freed by the first
/// `kds_resource_term` after its sets are released (until then it is only memory: a few
/// dozen bytes per resource). Usually (a resource free when terminated, no release running)
/// it is freed at once.
fn term(handle: kds::Resource) {
    let mut kept = IN_USE.lock().unwrap_or_else(|e| e.into_inner());
    kept.push((handle, None));
    kept.retain_mut(|(resource, waits)| {
        if waits.is_none() {
            if kds::ResourceSet::new()
                .exclusive(resource)
                .try_acquire()
                .is_err()
            {
                return true; // still in use
            }
            *waits = Some(releasing::in_flight());
        }
        // Kept while a release that may still read it runs (dropped here otherwise).
        !waits.as_mut().is_some_and(Snapshot::finished)
    });
}
