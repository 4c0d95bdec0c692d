//! The constants of `kds.h`, the error codes and error pointers, and the panic barrier every
//! exported function goes through.

use std::ffi::{c_int, c_ulong, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// `KDS_WAIT_BLOCKING`: the `kds_waitall` timeout that means "wait for ever" (`ULONG_MAX`, as
/// in the seed).
pub const KDS_WAIT_BLOCKING: c_ulong = c_ulong::MAX;
/// `KDS_FLAG_LOCKED_FAIL`: fail an async request whose resources a sync set holds or waits
/// for (`-EBUSY`). It is 0, so `flags == 0` means Fail, as in the seed.
pub const KDS_FLAG_LOCKED_FAIL: c_ulong = 0;
/// `KDS_FLAG_LOCKED_IGNORE`: don't wait for sync-locked resources, but block later requests.
pub const KDS_FLAG_LOCKED_IGNORE: c_ulong = 1;
/// `KDS_FLAG_LOCKED_WAIT`: no special treatment of sync-locked resources.
pub const KDS_FLAG_LOCKED_WAIT: c_ulong = 2;
/// `KDS_FLAG_LOCKED_ACTION`: the mask of the locked-policy bits in `flags`.
pub const KDS_FLAG_LOCKED_ACTION: c_ulong = 3;

/// Pointer-sized words of `struct kds_resource` (`KDS_RESOURCE_PRIVATE_WORDS` in the header).
pub const RESOURCE_WORDS: usize = 4;
/// Pointer-sized private words of `struct kds_callback`, after its two public fields
/// (`KDS_CALLBACK_PRIVATE_WORDS` in the header).
pub const CALLBACK_PRIVATE_WORDS: usize = 2;

/// `EINTR`: a `kds_waitall` was interrupted (`kds_interrupt_raise`).
pub const EINTR: c_int = 4;
/// `ENOMEM`: a deferred callback's worker thread could not be started.
pub const ENOMEM: c_int = 12;
/// `EFAULT`: a NULL pointer where an object was needed, a counter overflow, or an internal
/// error (a caught panic).
pub const EFAULT: c_int = 14;
/// `EBUSY`: an async request with `KDS_FLAG_LOCKED_FAIL` met a sync-locked resource.
pub const EBUSY: c_int = 16;
/// `EINVAL`: a bad value (negative or too large count, unknown flags, an object that was
/// never initialized or was terminated).
pub const EINVAL: c_int = 22;

/// The largest errno an error pointer carries (`KDS_MAX_ERRNO`, Linux's `MAX_ERRNO`).
pub const MAX_ERRNO: usize = 4095;

/// The error pointer for `-errno` (the kernel's `ERR_PTR`): the address `-errno` as an
/// unsigned word, within the last page of the address space, never a real object.
pub fn err_ptr<T>(errno: c_int) -> *mut T {
    debug_assert!(errno > 0 && errno as usize <= MAX_ERRNO);
    // An integer address that is never dereferenced, only compared by `KDS_IS_ERR`.
    (errno as isize).wrapping_neg() as usize as *mut T
}

/// Whether `p` is an error pointer (the kernel's `IS_ERR`, the header's `KDS_IS_ERR`).
pub fn is_err<T>(p: *const T) -> bool {
    p as usize >= MAX_ERRNO.wrapping_neg()
}

/// The errno for a [`kds::Error`] that is returned to C as an error (not a timeout).
pub fn errno_of(e: kds::Error) -> c_int {
    match e {
        kds::Error::Interrupted => EINTR,
        kds::Error::Busy => EBUSY,
        kds::Error::BadSet(_) => EINVAL,
        kds::Error::Spawn(_) => ENOMEM,
        // Overflow (the seed's lock_count overflow was -EFAULT too), and anything newer.
        _ => EFAULT,
    }
}

/// Runs `f`, turning a panic into `on_panic`: a Rust panic must never unwind into C. The
/// panic hook has already reported the panic on stderr.
#[inline(always)]
pub fn no_unwind<T>(on_panic: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(on_panic)
}

/// A raw C pointer that crosses to the thread that runs a callback. `kds.h` documents that the
/// two callback parameters are passed through untouched, to whichever thread runs the
/// callback: what they point to is the caller's to synchronize, as in the seed.
#[derive(Clone, Copy)]
pub(crate) struct CPtr(pub(crate) *mut c_void);

// SAFETY: kds never dereferences the pointer; it only hands it back to the user's callback,
// whose thread-safety contract (stated in kds.h) is the user's.
unsafe impl Send for CPtr {}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header's constants, word counts and errno values are the ones this crate uses.
    #[test]
    fn header_agrees_with_the_library() {
        let header = include_str!("../../include/kds.h");
        let define = |name: &str| -> String {
            let line = header
                .lines()
                .find(|l| {
                    let mut w = l.split_whitespace();
                    w.next() == Some("#define") && w.next() == Some(name)
                })
                .unwrap_or_else(|| panic!("{name} not defined in include/kds.h"));
            let value = line.split("/*").next().unwrap_or("");
            value
                .split_whitespace()
                .skip(2)
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(define("KDS_WAIT_BLOCKING"), "(ULONG_MAX)");
        assert_eq!(define("KDS_FLAG_LOCKED_FAIL"), "(0u << 0)");
        assert_eq!(define("KDS_FLAG_LOCKED_IGNORE"), "(1u << 0)");
        assert_eq!(define("KDS_FLAG_LOCKED_WAIT"), "(2u << 0)");
        assert_eq!(define("KDS_FLAG_LOCKED_ACTION"), "(3u << 0)");
        assert_eq!(
            define("KDS_RESOURCE_PRIVATE_WORDS"),
            RESOURCE_WORDS.to_string()
        );
        assert_eq!(
            define("KDS_CALLBACK_PRIVATE_WORDS"),
            CALLBACK_PRIVATE_WORDS.to_string()
        );
        assert_eq!(define("KDS_MAX_ERRNO"), MAX_ERRNO.to_string());
        assert_eq!(KDS_FLAG_LOCKED_FAIL, 0);
        assert_eq!(
            KDS_FLAG_LOCKED_ACTION,
            KDS_FLAG_LOCKED_IGNORE | KDS_FLAG_LOCKED_WAIT
        );
    }

    #[test]
    fn error_pointers_round_trip() {
        for e in [EINTR, ENOMEM, EFAULT, EBUSY, EINVAL] {
            let p: *mut u8 = err_ptr(e);
            assert!(is_err(p));
            assert_eq!(p as isize, -(e as isize));
        }
        assert!(!is_err(std::ptr::null::<u8>()));
        assert!(!is_err(&0u8 as *const u8));
    }
}
