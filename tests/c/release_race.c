/* kds_resource_set_release(&p) racing with itself: a cancellation path and a completion path
 * call it at once with the same p. Exactly one of them does the work (no double release, no
 * use after free: run under ASan and valgrind), both leave p == NULL, and nothing stays held
 * or queued. Thousands of rounds, three shapes:
 *   1. two threads release the same held sync set;
 *   2. two threads release the same pending async set (both cancel);
 *   3. one thread releases the holder, which grants an async set whose callback releases
 *      its own set (completion), while another thread releases it (cancellation), with
 *      direct and deferred callbacks;
 *   4. a direct async set granted at once, released by both threads while kds_async_waitall
 *      is still running its callback (every other round the callback waits until one of
 *      them has), then by the callback itself. */
#include "common.h"
#include <sched.h>

#define ROUNDS 3000

static struct kds_resource r;
static struct kds_resource *list[1] = { &r };
static unsigned long excl = 1;
static pthread_barrier_t go, done;
/* One p per round: a late deferred callback of round i releases only round i's p. */
static struct kds_resource_set *slots[ROUNDS];
static struct kds_resource_set *holder;
static int shape;
static int callbacks;
static int published; /* shape 4: the request call has returned */

static void complete(void *pp, void *unused)
{
	(void)unused;
	__atomic_add_fetch(&callbacks, 1, __ATOMIC_SEQ_CST);
	kds_resource_set_release((struct kds_resource_set **)pp); /* the completion path */
}

/* Shape 4's callback: on even rounds (p2 != NULL) it waits until a racer has released its
 * set, so that the release runs while the request call is still inside the callback. */
static void linger(void *pp, void *wait)
{
	struct kds_resource_set **p = pp;
	__atomic_add_fetch(&callbacks, 1, __ATOMIC_SEQ_CST);
	while (wait && __atomic_load_n(p, __ATOMIC_ACQUIRE))
		sched_yield();
	kds_resource_set_release(p); /* usually finds NULL: a racer came first */
}

static void *racer(void *id)
{
	for (int i = 0; i < ROUNDS; i++) {
		pthread_barrier_wait(&go);
		if (shape == 4 && id == NULL) {
			/* Waits for the publication, then releases (racing the other racer). */
			while (!__atomic_load_n(&slots[i], __ATOMIC_ACQUIRE) &&
			       !__atomic_load_n(&published, __ATOMIC_ACQUIRE))
				sched_yield();
			kds_resource_set_release(&slots[i]);
		} else if (shape == 3 && id == NULL)
			kds_resource_set_release(&holder); /* grants the async set */
		else
			kds_resource_set_release(&slots[i]);
		pthread_barrier_wait(&done);
	}
	return NULL;
}

static void run_shape(int which, struct kds_callback *cb)
{
	pthread_t a, b;
	shape = which;
	CHECK(pthread_create(&a, NULL, racer, NULL) == 0);
	CHECK(pthread_create(&b, NULL, racer, (void *)1) == 0);
	int before = __atomic_load_n(&callbacks, __ATOMIC_SEQ_CST);
	for (int i = 0; i < ROUNDS; i++) {
		struct kds_resource_set *s;
		switch (which) {
		case 1:
			s = kds_waitall(1, &excl, list, KDS_WAIT_BLOCKING);
			CHECK(s && !KDS_IS_ERR(s));
			slots[i] = s;
			break;
		case 2:
			holder = kds_waitall(1, &excl, list, KDS_WAIT_BLOCKING);
			CHECK(holder && !KDS_IS_ERR(holder));
			CHECK(kds_async_waitall(&slots[i], KDS_FLAG_LOCKED_WAIT, cb, &slots[i],
						NULL, 1, &excl, list) == 0);
			break;
		case 4:
			break; /* requested below, while the racers run */
		default:
			holder = kds_waitall(1, &excl, list, KDS_WAIT_BLOCKING);
			CHECK(holder && !KDS_IS_ERR(holder));
			CHECK(kds_async_waitall(&slots[i], KDS_FLAG_LOCKED_WAIT, cb, &slots[i],
						NULL, 1, &excl, list) == 0);
			break;
		}
		__atomic_store_n(&published, 0, __ATOMIC_RELEASE);
		pthread_barrier_wait(&go);
		if (which == 4) {
			CHECK(kds_async_waitall(&slots[i], KDS_FLAG_LOCKED_WAIT, cb, &slots[i],
						(i % 2) ? NULL : (void *)1, 1, &excl, list) == 0);
			__atomic_store_n(&published, 1, __ATOMIC_RELEASE);
		}
		pthread_barrier_wait(&done);
		CHECK(slots[i] == NULL);
		if (which == 2) {
			kds_resource_set_release(&holder);
			CHECK(holder == NULL);
		}
		/* Whoever won, the resource comes free: the set was cancelled, or its callback
		 * was skipped or released it. (A deferred callback may still be running.) */
		struct kds_resource_set *check = kds_waitall(1, &excl, list, 10000);
		CHECK(check && !KDS_IS_ERR(check));
		kds_resource_set_release(&check);
	}
	CHECK(pthread_join(a, NULL) == 0);
	CHECK(pthread_join(b, NULL) == 0);
	int ran = __atomic_load_n(&callbacks, __ATOMIC_SEQ_CST) - before;
	if (which == 2)
		CHECK(ran == 0); /* never granted before both cancels */
	if (which == 4)
		CHECK(ran == ROUNDS); /* free: granted at once, every time */
	CHECK(ran <= ROUNDS);
	printf("release_race: shape %d: %d of %d callbacks ran\n", which, ran, ROUNDS);
}

int main(void)
{
	struct kds_callback direct, deferred, lingering;
	kds_resource_init(&r);
	CHECK(kds_callback_init(&direct, 1, complete) == 0);
	CHECK(kds_callback_init(&lingering, 1, linger) == 0);
	CHECK(kds_callback_init(&deferred, 0, complete) == 0);
	CHECK(pthread_barrier_init(&go, NULL, 3) == 0);
	CHECK(pthread_barrier_init(&done, NULL, 3) == 0);

	run_shape(1, &direct);
	run_shape(2, &direct);
	run_shape(3, &direct);
	run_shape(3, &deferred);
	run_shape(4, &lingering);

	kds_callback_term(&deferred); /* drains: no callback runs after this */
	kds_callback_term(&direct);
	kds_callback_term(&lingering);
	CHECK(is_free(&r));
	pthread_barrier_destroy(&go);
	pthread_barrier_destroy(&done);
	kds_resource_term(&r);
	printf("release_race: ok\n");
	return 0;
}
