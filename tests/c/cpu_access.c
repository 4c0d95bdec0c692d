/* A CPU-access ioctl's sequence (2013 form), as the Exynos DRM driver's used KDS (written here
 * from what the driver does): per call, a struct kds_callback on the stack is initialized
 * (direct, its callback wakes the caller), kds_async_waitall asks for the buffer, the caller
 * sleeps until woken or "signalled"; on a signal it cancels with
 * kds_resource_set_release_sync, and in every case it terminates the callback object before
 * the frame dies. 10,000 calls, while another thread keeps taking the buffer (so the grant
 * often comes from that thread's release, racing the signal), with signals at random points;
 * and every fifth call finds the buffer held by a set that a third thread releases at a
 * varying moment while the call, already signalled, cancels: its release grants the call's
 * set and runs the callback on that thread, racing the release_sync.
 * After release_sync returns, the callback of that call must not be running and must never
 * start (it touches the caller's stack): each callback checks its call's number against the
 * last one finished, and ASan's stack-use-after-return detection (.ci/capi.sh) catches a
 * callback writing into a dead frame. */
#define KDS_API_VERSION 2013
#include "common.h"

#include <sched.h>

#define CALLS 10000

static struct kds_resource buffer;
static volatile int last_finished; /* the last call whose kds state is settled */
static volatile int stop;

struct waitq {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int woken, signalled, landed, call;
};

static void wake_cb(void *p1, void *p2)
{
	(void)p2;
	struct waitq *wq = p1;
	int call = wq->call;
	CHECK(call > __atomic_load_n(&last_finished, __ATOMIC_SEQ_CST));
	pthread_mutex_lock(&wq->lock);
	wq->woken = 1;
	pthread_cond_signal(&wq->cond);
	CHECK(call > __atomic_load_n(&last_finished, __ATOMIC_SEQ_CST));
	pthread_mutex_unlock(&wq->lock); /* the callback's last touch of the caller's frame */
}

/* Delivers the "signal" of a call (the pending signal a driver's wait_event_interruptible
 * would see): at most one per call, after a random delay. A call publishes its wait queue in
 * `target` (and its number in `target_call` first); whoever clears `target` owns the right
 * to touch it: the call, on its way out, or the signaller, which the call then waits for. */
static struct waitq *volatile target;
static volatile int target_call;
static void *signaller(void *p)
{
	(void)p;
	unsigned long x = 12345;
	int seen = 0;
	while (!stop) {
		int call = __atomic_load_n(&target_call, __ATOMIC_ACQUIRE);
		if (call == seen || !__atomic_load_n(&target, __ATOMIC_ACQUIRE)) {
			sched_yield();
			continue;
		}
		seen = call;
		x = x * 6364136223846793005ul + 1442695040888963407ul;
		if ((x >> 61) != 0) /* one call in eight */
			continue;
		for (unsigned long k = (x >> 40) % 64; k > 0; k--)
			sched_yield();
		struct waitq *wq = __atomic_load_n(&target, __ATOMIC_ACQUIRE);
		if (wq && __atomic_compare_exchange_n(&target, &wq, NULL, 0, __ATOMIC_ACQ_REL,
						      __ATOMIC_ACQUIRE)) {
			pthread_mutex_lock(&wq->lock);
			wq->signalled = wq->landed = 1;
			pthread_cond_signal(&wq->cond);
			pthread_mutex_unlock(&wq->lock);
		}
	}
	return NULL;
}

/* Every fifth call: the holder's set, released by this thread when the round starts. */
static struct kds_resource_set *volatile handed;
static volatile int release_round;
static void *releaser(void *p)
{
	(void)p;
	for (int round = 1; round <= CALLS / 5; round++) {
		while (__atomic_load_n(&release_round, __ATOMIC_ACQUIRE) != round)
			sched_yield();
		for (int k = 0; k < (round * 37) % 300; k++)
			sched_yield();
		struct kds_resource_set *s = handed;
		kds_resource_set_release(&s);
	}
	return NULL;
}

static void *contender(void *p)
{
	(void)p;
	unsigned long excl = 1;
	struct kds_resource *list = &buffer;
	while (!stop) {
		struct kds_resource_set *s = kds_waitall(1, &excl, &list, KDS_WAIT_BLOCKING);
		CHECK(s && !KDS_IS_ERR(s));
		for (int k = 0; k < 1000; k++) /* about a microsecond */
			__asm__ volatile("" ::: "memory");
		kds_resource_set_release(&s); /* may grant the ioctl's set: its callback runs here */
		sched_yield();
	}
	return NULL;
}

/* The ioctl: 0 and the held set in *out, or -EINTR with nothing held. */
static int cpu_acquire(int call, int exclusive, struct kds_resource_set **out)
{
	struct kds_callback cb;
	struct waitq wq;
	struct kds_resource *list = &buffer;
	unsigned long bm = exclusive;
	struct kds_resource_set *rset = NULL;
	pthread_mutex_init(&wq.lock, NULL);
	pthread_cond_init(&wq.cond, NULL);
	wq.woken = wq.landed = 0;
	wq.signalled = call % 5 == 0; /* a signal already pending: cancel unless granted at once */
	wq.call = call;
	CHECK(kds_callback_init(&cb, 1, wake_cb) == 0);
	__atomic_store_n(&target_call, call, __ATOMIC_RELEASE);
	__atomic_store_n(&target, &wq, __ATOMIC_RELEASE);
	CHECK(kds_async_waitall(&rset, &cb, &wq, NULL, 1, &bm, &list) == 0);
	pthread_mutex_lock(&wq.lock);
	while (!wq.woken && !wq.signalled)
		pthread_cond_wait(&wq.cond, &wq.lock);
	int interrupted = !wq.woken;
	if (!__atomic_exchange_n(&target, NULL, __ATOMIC_ACQ_REL))
		while (!wq.landed) /* the signaller took it: let its signal land */
			pthread_cond_wait(&wq.cond, &wq.lock);
	pthread_mutex_unlock(&wq.lock);
	int rc = 0;
	if (interrupted) {
		/* Cancel: the grant may be racing in (the callback running on the contender). */
		kds_resource_set_release_sync(&rset);
		CHECK(rset == NULL);
		/* Settled: this call's callback is over and never comes again. */
		__atomic_store_n(&last_finished, call, __ATOMIC_SEQ_CST);
		rc = -EINTR;
	} else {
		*out = rset;
	}
	kds_callback_term(&cb);
	/* Woken: the callback may still be leaving wq's lock (the driver's wake_up returns
	 * after the waiter runs); once we have taken it, the callback is over. */
	pthread_mutex_lock(&wq.lock);
	pthread_mutex_unlock(&wq.lock);
	__atomic_store_n(&last_finished, call, __ATOMIC_SEQ_CST);
	pthread_mutex_destroy(&wq.lock);
	pthread_cond_destroy(&wq.cond);
	return rc;
}

int main(void)
{
	kds_resource_init(&buffer);
	pthread_t c, s, r;
	CHECK(pthread_create(&c, NULL, contender, NULL) == 0);
	CHECK(pthread_create(&s, NULL, signaller, NULL) == 0);
	CHECK(pthread_create(&r, NULL, releaser, NULL) == 0);
	int held = 0, interrupted = 0;
	unsigned long excl = 1;
	struct kds_resource *list = &buffer;
	for (int call = 1; call <= CALLS; call++) {
		struct kds_resource_set *set = NULL;
		if (call % 5 == 0) {
			handed = kds_waitall(1, &excl, &list, KDS_WAIT_BLOCKING);
			CHECK(handed && !KDS_IS_ERR(handed));
			__atomic_store_n(&release_round, call / 5, __ATOMIC_RELEASE);
		}
		int rc = cpu_acquire(call, call % 4 != 0, &set);
		if (rc == 0) {
			CHECK(set != NULL);
			held++;
			kds_resource_set_release(&set); /* the release ioctl */
		} else {
			CHECK(rc == -EINTR && set == NULL);
			interrupted++;
		}
	}
	stop = 1;
	CHECK(pthread_join(r, NULL) == 0);
	CHECK(pthread_join(s, NULL) == 0);
	CHECK(pthread_join(c, NULL) == 0);
	CHECK(held + interrupted == CALLS && held > 0 && interrupted > 0);
	CHECK(interrupted >= CALLS / 50); /* most of the pre-signalled calls find it held */
	CHECK(kds_resource_term(&buffer) == 0);
	printf("cpu_access: %d calls, %d granted, %d cancelled on a signal: ok\n", CALLS, held,
	       interrupted);
	return 0;
}
