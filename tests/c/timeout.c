/* kds_waitall timeouts: NULL after the timeout with nothing left queued; 0 does not block; a
 * grant that comes before the timeout wins. */
#include "common.h"

struct waiter_arg {
	struct kds_resource *res;
	struct kds_resource_set *got;
	double waited_ms;
};

static void *late_waiter(void *p)
{
	struct waiter_arg *a = p;
	unsigned long excl = 1;
	double t0 = now_ms();
	a->got = kds_waitall(1, &excl, &a->res, 5000);
	a->waited_ms = now_ms() - t0;
	return NULL;
}

static void ran_cb(void *ran, void *unused)
{
	(void)unused;
	*(int *)ran += 1;
}

int main(void)
{
	struct kds_resource r;
	struct kds_resource *list[1] = { &r };
	unsigned long excl = 1, shared = 0;
	struct kds_callback direct;

	kds_resource_init(&r);
	CHECK(kds_callback_init(&direct, 1, ran_cb) == 0);

	struct kds_resource_set *held = kds_waitall(1, &excl, list, KDS_WAIT_BLOCKING);
	CHECK(held != NULL && !KDS_IS_ERR(held));

	/* Timed out: NULL, after about the timeout. */
	double t0 = now_ms();
	struct kds_resource_set *s = kds_waitall(1, &excl, list, 100);
	double waited = now_ms() - t0;
	CHECK(s == NULL);
	CHECK(waited >= 95 && waited < 5000);

	/* Timeout 0: does not block. */
	t0 = now_ms();
	s = kds_waitall(1, &shared, list, 0);
	CHECK(s == NULL);
	CHECK(now_ms() - t0 < 1000);

	/* Nothing of the timed-out waits stayed queued: an async request queued now is granted
	 * by the holder's release alone (a leftover exclusive link ahead of it would block it). */
	int ran = 0;
	struct kds_resource_set *async = NULL;
	CHECK(kds_async_waitall(&async, KDS_FLAG_LOCKED_WAIT, &direct, &ran, NULL, 1, &excl,
				list) == 0);
	CHECK(ran == 0);
	kds_resource_set_release(&held);
	CHECK(ran == 1);
	kds_resource_set_release(&async);
	CHECK(is_free(&r));

	/* A grant before the timeout wins: released after ~50 ms, the 5 s wait gets the set. */
	held = kds_waitall(1, &excl, list, KDS_WAIT_BLOCKING);
	CHECK(held && !KDS_IS_ERR(held));
	struct waiter_arg arg = { &r, NULL, 0 };
	pthread_t t;
	CHECK(pthread_create(&t, NULL, late_waiter, &arg) == 0);
	sleep_ms(50);
	kds_resource_set_release(&held);
	CHECK(pthread_join(t, NULL) == 0);
	CHECK(arg.got != NULL && !KDS_IS_ERR(arg.got));
	CHECK(arg.waited_ms < 4000);
	kds_resource_set_release(&arg.got);
	CHECK(is_free(&r));

	kds_callback_term(&direct);
	kds_resource_term(&r);
	printf("timeout: ok (timed out after %.1f ms)\n", waited);
	return 0;
}
