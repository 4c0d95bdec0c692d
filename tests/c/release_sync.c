/* kds_resource_set_release_sync (2013 form): release or cancel, and when it returns the
 * set's callback is not running and never will.
 *   - a pending set: cancelled, its callback never runs;
 *   - granted, its callback queued on a busy worker: returns at once (no wait for the
 *     worker), the callback never runs, the resources come free when the worker reaches it;
 *   - a callback running on a worker, on another thread's release (direct), and inside
 *     another thread's kds_async_waitall (direct, granted at once): waited for;
 *   - called from the set's own callback (deferred, direct queued, direct granted at once):
 *     releases and returns without waiting;
 *   - two racing release_sync calls on one pprset: exactly one does the work;
 *   - release_sync racing a grant, many rounds: no callback of a round starts or runs on
 *     after that round's release_sync returned;
 *   - it waits for the callback only, not for the direct callbacks that callback queued
 *     (they run after it, still inside the kds_async_waitall that granted it): two threads,
 *     each in such a queued callback, release_sync each other's finished sets;
 *   - a plain release never waits for a callback running on another thread. */
#define KDS_API_VERSION 2013
#include "common.h"

#include <sched.h>

#define ROUNDS 3000

static struct kds_resource r;
static struct kds_resource *list[1] = { &r };
static unsigned long excl = 1;

/* A callback that counts its runs, announces its start and waits for a go (or a delay). */
struct slow {
	struct event started, go;
	int runs, finished, wait_for_go, delay_ms;
};

static void slow_cb(void *p1, void *p2)
{
	(void)p2;
	struct slow *s = p1;
	__atomic_add_fetch(&s->runs, 1, __ATOMIC_SEQ_CST);
	event_signal(&s->started);
	if (s->wait_for_go)
		event_wait(&s->go, 1);
	if (s->delay_ms)
		sleep_ms(s->delay_ms);
	__atomic_store_n(&s->finished, 1, __ATOMIC_SEQ_CST);
}

static void slow_init(struct slow *s, int wait_for_go, int delay_ms)
{
	event_init(&s->started);
	event_init(&s->go);
	s->runs = s->finished = 0;
	s->wait_for_go = wait_for_go;
	s->delay_ms = delay_ms;
}

static void slow_destroy(struct slow *s)
{
	event_destroy(&s->started);
	event_destroy(&s->go);
}

/* Callbacks that release_sync their own set (p1 = its pprset): must not wait for
 * themselves. */
static int self_runs;
static void self_release_cb(void *p1, void *p2)
{
	(void)p2;
	kds_resource_set_release_sync(p1);
	CHECK(*(struct kds_resource_set **)p1 == NULL);
	CHECK(is_free(&r)); /* released, though the callback is still running */
	self_runs++;
}

static struct kds_resource_set *holder_set;
static void *release_holder(void *p)
{
	(void)p;
	kds_resource_set_release(&holder_set); /* grants a set whose direct callback runs here */
	return NULL;
}

struct in_call {
	struct kds_callback *cb;
	struct slow *slow;
	struct kds_resource_set *volatile set;
};

static void *request_in_call(void *p)
{
	struct in_call *c = p;
	/* Granted at once: the callback runs inside this call. The slot is shared with the
	 * main thread, which release_syncs it while the callback runs. */
	CHECK(kds_async_waitall((struct kds_resource_set **)&c->set, c->cb, c->slow, NULL, 1, &excl,
				list) == 0);
	return NULL;
}

/* The racing rounds: a holder on one thread, release_sync on the other. */
static volatile int round_done; /* the last round whose release_sync returned */
static int race_runs;
static void round_cb(void *p1, void *p2)
{
	(void)p2;
	int round = (int)(intptr_t)p1;
	CHECK(round > __atomic_load_n(&round_done, __ATOMIC_SEQ_CST));
	for (int i = 0; i < (round * 7919) % 500; i++)
		sched_yield();
	__atomic_add_fetch(&race_runs, 1, __ATOMIC_SEQ_CST);
	CHECK(round > __atomic_load_n(&round_done, __ATOMIC_SEQ_CST));
}

struct racer {
	volatile int round;
	struct kds_resource_set *held;
	struct kds_resource_set *volatile shared_slot;
	int mode; /* 0: release the holder (grants the pending set); 1: release_sync the slot */
};

static void *race_thread(void *p)
{
	struct racer *x = p;
	for (int i = 1; i <= ROUNDS; i++) {
		while (__atomic_load_n(&x->round, __ATOMIC_ACQUIRE) != i)
			sched_yield();
		if (x->mode == 0)
			kds_resource_set_release(&x->held);
		else
			kds_resource_set_release_sync((struct kds_resource_set **)&x->shared_slot);
		__atomic_store_n(&x->round, -i, __ATOMIC_RELEASE);
	}
	return NULL;
}

/* The cross case: T's request s1 is granted at once and cb1 (direct) requests s2, whose
 * callback cb2 is queued behind cb1 and runs, on T, after cb1 returned but before T's
 * kds_async_waitall(s1) returns. U's request s4 likewise runs cb4 inside U's call. cb2
 * release_syncs s4 (whose callback cb4 is running on U) while cb4 release_syncs s1 (whose
 * callback cb1 has returned): cb4's call must not wait for T's call, or neither returns. */
static struct kds_resource cx1, cx2, cx4;
static struct kds_callback ccb1, ccb2, ccb4;
static struct kds_resource_set *cs1, *cs2, *cs4;
static volatile int cb1_returned, cb4_started, cb4_returned;

static void cross_cb2(void *a, void *b)
{
	(void)a;
	(void)b;
	while (!__atomic_load_n(&cb4_started, __ATOMIC_SEQ_CST))
		sched_yield();
	kds_resource_set_release_sync(&cs4); /* waits for cb4 */
	CHECK(__atomic_load_n(&cb4_returned, __ATOMIC_SEQ_CST));
	kds_resource_set_release(&cs2);
}

static void cross_cb1(void *a, void *b)
{
	(void)a;
	(void)b;
	struct kds_resource *l = &cx2;
	CHECK(kds_async_waitall(&cs2, &ccb2, NULL, NULL, 1, &excl, &l) == 0); /* queued: cb2 */
	__atomic_store_n(&cb1_returned, 1, __ATOMIC_SEQ_CST);
}

static void cross_cb4(void *a, void *b)
{
	(void)a;
	(void)b;
	__atomic_store_n(&cb4_started, 1, __ATOMIC_SEQ_CST);
	while (!__atomic_load_n(&cb1_returned, __ATOMIC_SEQ_CST))
		sched_yield();
	sleep_ms(20); /* cb2 is waiting for this callback by now */
	kds_resource_set_release_sync(&cs1); /* cb1 has returned: must not wait */
	__atomic_store_n(&cb4_returned, 1, __ATOMIC_SEQ_CST);
}

static void *cross_u(void *p)
{
	(void)p;
	struct kds_resource *l = &cx4;
	CHECK(kds_async_waitall(&cs4, &ccb4, NULL, NULL, 1, &excl, &l) == 0);
	return NULL;
}

int main(void)
{
	struct kds_callback worker, direct, worker_self, direct_self, round_worker, round_direct;
	kds_resource_init(&r);
	CHECK(kds_callback_init(&worker, 0, slow_cb) == 0);
	CHECK(kds_callback_init(&direct, 1, slow_cb) == 0);
	CHECK(kds_callback_init(&worker_self, 0, self_release_cb) == 0);
	CHECK(kds_callback_init(&direct_self, 1, self_release_cb) == 0);
	CHECK(kds_callback_init(&round_worker, 0, round_cb) == 0);
	CHECK(kds_callback_init(&round_direct, 1, round_cb) == 0);
	struct slow a, b;

	/* A held sync set: release_sync is a release. */
	struct kds_resource_set *s = kds_waitall(1, &excl, list, 0);
	CHECK(s && !KDS_IS_ERR(s));
	kds_resource_set_release_sync(&s);
	CHECK(s == NULL && is_free(&r));

	/* Pending: cancelled, never runs. */
	slow_init(&a, 0, 0);
	struct kds_resource_set *hold = kds_waitall(1, &excl, list, 0);
	CHECK(kds_async_waitall(&s, &worker, &a, NULL, 1, &excl, list) == 0 && s);
	kds_resource_set_release_sync(&s);
	CHECK(s == NULL);
	kds_resource_set_release(&hold);
	CHECK(is_free(&r));
	kds_callback_term(&worker); /* drains the worker: anything queued has run */
	CHECK(a.runs == 0);
	slow_destroy(&a);
	CHECK(kds_callback_init(&worker, 0, slow_cb) == 0);

	/* Granted, its callback queued behind a busy one on the same worker: release_sync does
	 * not wait for the worker, and the callback never runs. */
	struct kds_resource other;
	struct kds_resource *other_list[1] = { &other };
	kds_resource_init(&other);
	slow_init(&a, 1, 0);
	slow_init(&b, 0, 0);
	struct kds_resource_set *busy = NULL, *queued = NULL;
	CHECK(kds_async_waitall(&busy, &worker, &a, NULL, 1, &excl, other_list) == 0);
	event_wait(&a.started, 1); /* the worker is inside a's callback */
	CHECK(kds_async_waitall(&queued, &worker, &b, NULL, 1, &excl, list) == 0);
	double t0 = now_ms();
	kds_resource_set_release_sync(&queued); /* granted (r was free), not started */
	CHECK(queued == NULL && now_ms() - t0 < 5000);
	CHECK(a.finished == 0); /* it did not wait for the worker */
	event_signal(&a.go);
	kds_resource_set_release_sync(&busy); /* waits for a's callback */
	CHECK(a.finished == 1);
	kds_callback_term(&worker);
	CHECK(b.runs == 0 && is_free(&r) && is_free(&other));
	slow_destroy(&a);
	slow_destroy(&b);
	CHECK(kds_callback_init(&worker, 0, slow_cb) == 0);

	/* Running on a worker: waited for. */
	slow_init(&a, 0, 50);
	CHECK(kds_async_waitall(&s, &worker, &a, NULL, 1, &excl, list) == 0);
	event_wait(&a.started, 1);
	kds_resource_set_release_sync(&s);
	CHECK(a.finished == 1 && a.runs == 1);
	slow_destroy(&a);

	/* A plain release never waits for it. */
	slow_init(&a, 1, 0);
	CHECK(kds_async_waitall(&s, &worker, &a, NULL, 1, &excl, list) == 0);
	event_wait(&a.started, 1);
	kds_resource_set_release(&s);
	CHECK(s == NULL && a.finished == 0 && is_free(&r)); /* released while it runs */
	event_signal(&a.go);
	kds_callback_term(&worker);
	CHECK(a.finished == 1);
	slow_destroy(&a);

	/* Direct, running on another thread's release: waited for. */
	slow_init(&a, 0, 50);
	holder_set = kds_waitall(1, &excl, list, 0);
	CHECK(holder_set && !KDS_IS_ERR(holder_set));
	CHECK(kds_async_waitall(&s, &direct, &a, NULL, 1, &excl, list) == 0 && s);
	pthread_t t;
	CHECK(pthread_create(&t, NULL, release_holder, NULL) == 0);
	event_wait(&a.started, 1);
	kds_resource_set_release_sync(&s);
	CHECK(a.finished == 1);
	CHECK(pthread_join(t, NULL) == 0);
	slow_destroy(&a);

	/* Direct, granted at once inside another thread's kds_async_waitall: waited for. */
	slow_init(&a, 0, 50);
	struct in_call c = { &direct, &a, NULL };
	CHECK(pthread_create(&t, NULL, request_in_call, &c) == 0);
	event_wait(&a.started, 1);
	CHECK(c.set != NULL); /* published before the callback runs */
	kds_resource_set_release_sync((struct kds_resource_set **)&c.set);
	CHECK(a.finished == 1 && c.set == NULL);
	CHECK(pthread_join(t, NULL) == 0);
	CHECK(is_free(&r));
	slow_destroy(&a);

	/* From its own callback: deferred, direct granted at once, direct queued. */
	CHECK(kds_async_waitall(&s, &worker_self, &s, NULL, 1, &excl, list) == 0);
	kds_callback_term(&worker_self);
	CHECK(self_runs == 1 && s == NULL);
	CHECK(kds_async_waitall(&s, &direct_self, &s, NULL, 1, &excl, list) == 0);
	CHECK(self_runs == 2 && s == NULL);
	hold = kds_waitall(1, &excl, list, 0);
	CHECK(kds_async_waitall(&s, &direct_self, &s, NULL, 1, &excl, list) == 0 && s);
	kds_resource_set_release(&hold);
	CHECK(self_runs == 3 && s == NULL && is_free(&r));

	/* The cross case (above). */
	kds_resource_init(&cx1);
	kds_resource_init(&cx2);
	kds_resource_init(&cx4);
	CHECK(kds_callback_init(&ccb1, 1, cross_cb1) == 0);
	CHECK(kds_callback_init(&ccb2, 1, cross_cb2) == 0);
	CHECK(kds_callback_init(&ccb4, 1, cross_cb4) == 0);
	CHECK(pthread_create(&t, NULL, cross_u, NULL) == 0);
	struct kds_resource *lx = &cx1;
	CHECK(kds_async_waitall(&cs1, &ccb1, NULL, NULL, 1, &excl, &lx) == 0);
	CHECK(pthread_join(t, NULL) == 0);
	CHECK(cs1 == NULL && cs2 == NULL && cs4 == NULL);
	CHECK(is_free(&cx1) && is_free(&cx2) && is_free(&cx4));
	kds_callback_term(&ccb1);
	kds_callback_term(&ccb2);
	kds_callback_term(&ccb4);
	CHECK(kds_resource_term(&cx1) == 0 && kds_resource_term(&cx2) == 0 &&
	      kds_resource_term(&cx4) == 0);

	/* Two release_sync calls racing on one pprset (held, then pending): one does it. */
	for (int mode = 0; mode < 2; mode++) {
		struct racer x = { 0, NULL, NULL, 1 };
		CHECK(pthread_create(&t, NULL, race_thread, &x) == 0);
		for (int i = 1; i <= ROUNDS; i++) {
			hold = mode ? kds_waitall(1, &excl, list, 0) : NULL;
			struct kds_resource_set *tmp = NULL;
			if (mode)
				CHECK(kds_async_waitall(&tmp, &round_worker, (void *)(intptr_t)(1 << 30),
							NULL, 1, &excl, list) == 0);
			else
				tmp = kds_waitall(1, &excl, list, 0);
			CHECK(tmp && !KDS_IS_ERR(tmp));
			x.shared_slot = tmp;
			__atomic_store_n(&x.round, i, __ATOMIC_RELEASE);
			kds_resource_set_release_sync((struct kds_resource_set **)&x.shared_slot);
			while (__atomic_load_n(&x.round, __ATOMIC_ACQUIRE) != -i)
				sched_yield();
			CHECK(x.shared_slot == NULL);
			if (hold)
				kds_resource_set_release(&hold);
			CHECK(is_free(&r));
		}
		CHECK(pthread_join(t, NULL) == 0);
	}
	CHECK(race_runs == 0); /* the pending sets were cancelled */

	/* release_sync racing the grant: worker and direct callbacks. */
	for (int d = 0; d < 2; d++) {
		struct racer x = { 0, NULL, NULL, 0 };
		CHECK(pthread_create(&t, NULL, race_thread, &x) == 0);
		for (int i = 1; i <= ROUNDS; i++) {
			int round = d * ROUNDS + i;
			/* Blocking: a set cancelled with its callback queued on the worker is
			 * released when the worker reaches it. */
			x.held = kds_waitall(1, &excl, list, KDS_WAIT_BLOCKING);
			CHECK(x.held && !KDS_IS_ERR(x.held));
			s = NULL;
			CHECK(kds_async_waitall(&s, d ? &round_direct : &round_worker,
						(void *)(intptr_t)round, NULL, 1, &excl, list) == 0);
			__atomic_store_n(&x.round, i, __ATOMIC_RELEASE); /* the other thread releases */
			for (int k = 0; k < (i * 31) % 200; k++)
				sched_yield();
			kds_resource_set_release_sync(&s);
			__atomic_store_n(&round_done, round, __ATOMIC_SEQ_CST);
			while (__atomic_load_n(&x.round, __ATOMIC_ACQUIRE) != -i)
				sched_yield();
		}
		CHECK(pthread_join(t, NULL) == 0);
	}
	kds_callback_term(&round_worker); /* the worker has reached every cancelled set */
	kds_callback_term(&round_direct);
	CHECK(is_free(&r));
	printf("release_sync: %d of %d racing callbacks ran before their release_sync\n", race_runs,
	       2 * ROUNDS);

	kds_callback_term(&worker);
	kds_callback_term(&direct);
	kds_callback_term(&direct_self);
	CHECK(kds_resource_term(&other) == 0);
	CHECK(kds_resource_term(&r) == 0);
	printf("release_sync: ok\n");
	return 0;
}
