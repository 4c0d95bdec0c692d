/*
 * kds.h - the KDS (Kernel Dependency System) C API, in user space.
 *
 * Part of the kds repository (capi/, include/), MIT OR Apache-2.0.
 * Implemented by libkds (capi/ in the kds repository) on kds's lock-free engine.
 *
 * Source-compatible with two generations of the kernel's include/linux/kds.h, chosen by
 * KDS_API_VERSION before this header is included (or -DKDS_API_VERSION=...):
 *
 *   2012 (the default): the 2012 KDS RFC. kds_async_waitall takes 8 arguments, with flags
 *        (KDS_FLAG_LOCKED_*) after pprset.
 *   2013: the header the shipped drivers were written against (Mali kbase, the Exynos and
 *        PL111 DRM drivers, the dma-buf hook, dma_buf_lock). kds_async_waitall takes 7
 *        arguments: no flags, a request waits in line (KDS_FLAG_LOCKED_WAIT).
 *
 * Both forms have kds_resource_set_release_sync, an int kds_resource_term, and the readable
 * user_cb and direct fields of struct kds_callback, and one libkds serves both (the 2013
 * kds_async_waitall is the symbol kds_async_waitall_2013), so objects built against either
 * link into one program. Same names and constant values as the kernel's. What the kernel
 * expressed with jiffies, ERR_PTR and signals means here:
 *
 *   - timeouts are in milliseconds; KDS_WAIT_BLOCKING waits for ever; 0 does not block
 *     (and never consumes a raised interrupt: it is a probe);
 *   - kds_waitall returns the held set, NULL when the timeout passed, or an error pointer:
 *     test it with KDS_IS_ERR(p) and decode it with KDS_PTR_ERR(p), a negative errno:
 *       -EINTR   the calling thread's interrupt was raised (kds_interrupt_raise below;
 *                the kernel returned -ERESTARTSYS on a signal)
 *       -EINVAL  a bad value: negative or too large count (more than 65536 resources),
 *                unknown flags, a struct that was never initialized (zero-filled) or was
 *                terminated
 *       -EFAULT  a NULL pointer where an object is needed; a counter overflow; an
 *                internal error
 *     kds_async_waitall and kds_callback_init return 0 or such a negative errno, plus
 *       -EBUSY   KDS_FLAG_LOCKED_FAIL (2012 form) and a resource is held or waited for
 *                by a kds_waitall caller
 *       -ENOMEM  a deferred callback's worker thread could not be started;
 *     kds_resource_term returns 0, or -EBUSY for a resource still in use (terminated
 *     all the same: see there).
 *
 * Errors are returned, never abort()ed. Nothing stays queued after an error or a timeout.
 * Thread safety: every function may be called from any thread, including from inside a
 * callback, except that a struct kds_resource / kds_callback must not be initialized or
 * terminated while another thread uses it, nor from a callback that runs inside a call
 * naming it (a request's failed first attempt may grant, and call back, another set before
 * it queues). docs/c-api.md lists every difference from the kernel original.
 */
#ifndef KDS_H
#define KDS_H

#include <limits.h>
#include <stdint.h>

#ifndef KDS_API_VERSION
#define KDS_API_VERSION 2012
#endif
#if KDS_API_VERSION != 2012 && KDS_API_VERSION != 2013
#error "KDS_API_VERSION must be 2012 (the 2012 RFC's kds.h) or 2013 (the kds.h drivers shipped with)"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* kds_waitall timeout: wait until granted or interrupted. */
#define KDS_WAIT_BLOCKING (ULONG_MAX)

#if KDS_API_VERSION == 2012
/* kds_async_waitall flags (2012 form only): what an async request does with a resource that
 * a kds_waitall caller holds or waits for (a "sync-locked" resource). Any other bit is
 * -EINVAL. */
#define KDS_FLAG_LOCKED_FAIL (0u << 0)   /* fail with -EBUSY, queue nothing (flags == 0) */
#define KDS_FLAG_LOCKED_IGNORE (1u << 0) /* don't wait for it, but block later requests */
#define KDS_FLAG_LOCKED_WAIT (2u << 0)   /* no special treatment: wait in line */
#define KDS_FLAG_LOCKED_ACTION (3u << 0) /* mask of the action bits */
#endif

/* Error pointers (the kernel's IS_ERR / PTR_ERR / ERR_PTR, for kds_waitall's result). */
#define KDS_MAX_ERRNO 4095
#define KDS_IS_ERR(p) ((uintptr_t)(const void *)(p) >= (uintptr_t)-KDS_MAX_ERRNO)
#define KDS_PTR_ERR(p) ((long)(intptr_t)(const void *)(p))
#define KDS_ERR_PTR(e) ((void *)(intptr_t)(e))

/* Storage sizes, in pointers, of the private parts of the two structs callers embed. The
 * library asserts at compile time that its objects fit exactly; the test suite checks these
 * numbers. Each struct is 4 pointers in all. */
#define KDS_RESOURCE_PRIVATE_WORDS 4
#define KDS_CALLBACK_PRIVATE_WORDS 2

/* One request for a set of resources: held, or pending. Opaque. */
struct kds_resource_set;

/* A grant callback's function: called with kds_async_waitall's two parameters. */
typedef void (*kds_callback_fn)(void *callback_parameter, void *callback_extra_parameter);

/* A grant callback: a function and where it runs. Embed by value. user_cb and direct are
 * the kernel's fields, written by kds_callback_init (the function, and the direct argument as
 * given) and readable after it; changing them is not supported. The rest is private (the
 * kernel's wq is not there). */
struct kds_callback {
	kds_callback_fn user_cb;
	int direct;
	void *kds_private_[KDS_CALLBACK_PRIVATE_WORDS];
};

/* One resource (typically one image buffer). Embed by value; the contents are private (not
 * the kernel's list head). A zero-filled struct is refused (-EINVAL) until initialized. */
struct kds_resource {
	void *kds_private_[KDS_RESOURCE_PRIVATE_WORDS];
};

/* ---- callback objects ---- */

/* Initialize *cb. direct != 0: user_cb runs on the thread whose call completed the grant
 * (inside kds_async_waitall when everything is free, else inside the release that freed the
 * last resource), so that thread must not hold locks the callback takes. direct == 0: it runs
 * on a worker thread owned by *cb, one callback at a time, in grant order.
 * Returns 0, -EFAULT (cb NULL), -EINVAL (user_cb NULL) or -ENOMEM (no worker thread). */
int kds_callback_init(struct kds_callback *cb, int direct, kds_callback_fn user_cb);

/* Terminate *cb. Deferred: first waits until every callback granted before the call has
 * finished (unless called from one of them); requests still pending keep the worker and
 * their callback runs when granted, so release them first. Don't hold locks those callbacks
 * take. NULL, a zero-filled or terminated *cb is ignored. */
void kds_callback_term(struct kds_callback *cb);

/* ---- resources ---- */

/* Initialize *resource as a new, free resource. NULL is ignored. */
void kds_resource_init(struct kds_resource *resource);

/* Forget *resource. Returns 0 if it was free (and is freed), or -EBUSY if sets hold it or
 * wait for it: it is terminated all the same, and freed when the last of them is released,
 * with no further call. After either answer the struct's memory is the caller's to free or
 * reuse: the library keeps no pointer into it. (The 2013 kernel also answered -EBUSY, but left
 * the resource alive; the 2012 one asserted.) A zero-filled or terminated struct gives
 * -EINVAL and NULL -EFAULT; both are otherwise ignored. Each call costs the same whatever
 * else is in use. */
int kds_resource_term(struct kds_resource *resource);

/* ---- requests ---- */

/* Request number_resources resources at once, asynchronously. Bit i of
 * exclusive_access_bitmap (Linux bitmap order: word i / BITS_PER_LONG, bit i % BITS_PER_LONG)
 * set means exclusive access to resource_list[i], clear means shared. cb's function runs with
 * callback_parameter and callback_extra_parameter once all of them are granted; with a direct
 * cb and everything free it runs before this call returns (unless this call is made inside a
 * direct callback: then just after that callback returns, so that chains don't grow the
 * stack, or, if that callback blocks in kds_waitall first, just before it blocks, since the
 * set it waits for may need this one to run). *pprset is set before the callback can run, so
 * the callback may release it. The
 * caller owns the set until kds_resource_set_release(pprset). flags (2012 form): a
 * KDS_FLAG_LOCKED_* action; the 2013 form has none and waits in line. The arrays are read
 * during the call only: free them when it returns. A resource named twice counts once,
 * exclusive winning; number_resources == 0 is granted at once. Returns 0 or a negative errno
 * (see the top of this file); on error nothing is queued and *pprset is unchanged. */
#if KDS_API_VERSION == 2012
int kds_async_waitall(struct kds_resource_set **pprset,
		      unsigned long flags,
		      struct kds_callback *cb,
		      void *callback_parameter,
		      void *callback_extra_parameter,
		      int number_resources,
		      unsigned long *exclusive_access_bitmap,
		      struct kds_resource **resource_list);
#else
#if defined(__GNUC__) || defined(__clang__)
#define KDS_STR2_(x) #x
#define KDS_STR_(x) KDS_STR2_(x)
#define KDS_SYMBOL_(name) __asm__(KDS_STR_(__USER_LABEL_PREFIX__) #name)
#else
#define KDS_SYMBOL_(name)
#define kds_async_waitall kds_async_waitall_2013
#endif
int kds_async_waitall(struct kds_resource_set **pprset,
		      struct kds_callback *cb,
		      void *callback_parameter,
		      void *callback_extra_parameter,
		      int number_resources,
		      unsigned long *exclusive_access_bitmap,
		      struct kds_resource **resource_list) KDS_SYMBOL_(kds_async_waitall_2013);
#endif

/* Request number_resources resources at once and block until all are granted, timeout
 * milliseconds pass, or the calling thread's interrupt is raised. Returns the held set
 * (release it with kds_resource_set_release), NULL on timeout, or an error pointer
 * (KDS_IS_ERR; KDS_PTR_ERR is -EINTR when interrupted). Don't call it while holding sets or
 * locks that the holders of these resources need. */
struct kds_resource_set *kds_waitall(int number_resources,
				     unsigned long *exclusive_access_bitmap,
				     struct kds_resource **resource_list,
				     unsigned long timeout);

/* Release the set in *pprset (or cancel it, if it is still pending) and set *pprset to NULL,
 * atomically: when a cancellation path and a completion path call this at once with the same
 * pprset, exactly one of them does the work and both return with *pprset == NULL. A pending
 * set's callback that has not started by then never runs. NULL (pprset or *pprset) and error
 * pointers are ignored. Releasing may grant other requests and run their direct callbacks on
 * this thread before it returns: don't hold locks they take. It never waits for a callback
 * running on another thread (so it may be called under a spinlock such a callback takes). */
void kds_resource_set_release(struct kds_resource_set **pprset);

/* kds_resource_set_release, and before returning: the set's callback is not running and
 * never will. One that has not started never runs (also one queued on a worker: its set is
 * then released when the worker reaches it), and one running on another thread is waited
 * for (until it returns; not for the callbacks it queued), so that what the callback uses may
 * be freed after this returns. Called on the thread that runs the callback while it runs
 * (from inside it, or from another callback nested in it, such as one delivered before a
 * kds_waitall inside it blocks), it cannot wait for it: it releases the set and returns at
 * once, as kds_resource_set_release does, and the callback may still be on the stack. Before
 * it blocks, the direct callbacks this thread owes run (as in kds_waitall). As with the
 * kernel's cancel_work_sync, the caller must not be something the running callback waits
 * for: it must not hold a lock the callback takes, and two callbacks that release_sync each
 * other's sets while both run deadlock. (A callback still queued is never waited for.) */
void kds_resource_set_release_sync(struct kds_resource_set **pprset);

/* ---- extension: interrupting kds_waitall (the kernel used signals) ---- */

/* A counted reference to one thread's interrupt. Opaque. */
struct kds_interrupt;

/* A new reference to the calling thread's interrupt, for another thread to raise; give it
 * back with kds_interrupt_put. Stays valid after the thread exits. NULL only while the
 * thread is exiting. */
struct kds_interrupt *kds_interrupt_get(void);

/* Give a reference back. NULL is ignored. */
void kds_interrupt_put(struct kds_interrupt *intr);

/* Interrupt the owning thread: its kds_waitall that is blocked, or the next one that has to
 * block, returns KDS_ERR_PTR(-EINTR) with nothing queued, which consumes the interrupt. A
 * kds_waitall granted without blocking leaves it pending. NULL is ignored. */
void kds_interrupt_raise(struct kds_interrupt *intr);

/* Withdraw a raised interrupt that no kds_waitall has consumed. NULL is ignored. */
void kds_interrupt_clear(struct kds_interrupt *intr);

#ifdef __cplusplus
}
#endif

#endif /* KDS_H */
