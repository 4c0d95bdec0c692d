/* Interrupting a blocked kds_waitall from another thread (this library's extension standing
 * in for the kernel's signals): -EINTR, nothing left queued, the interrupt consumed. */
#include "common.h"

struct arg {
	struct kds_resource *res;
	struct kds_interrupt *intr;
	struct event ready;
	struct kds_resource_set *got;
	unsigned long timeout;
	double waited_ms;
};

static void *blocked_waiter(void *p)
{
	struct arg *a = p;
	unsigned long excl = 1;
	a->intr = kds_interrupt_get();
	CHECK(a->intr != NULL);
	event_signal(&a->ready);
	double t0 = now_ms();
	a->got = kds_waitall(1, &excl, &a->res, a->timeout);
	a->waited_ms = now_ms() - t0;
	return NULL;
}

static void interrupt_blocked(struct kds_resource *r, unsigned long timeout)
{
	struct arg a;
	memset(&a, 0, sizeof a);
	a.res = r;
	a.timeout = timeout;
	event_init(&a.ready);
	pthread_t t;
	CHECK(pthread_create(&t, NULL, blocked_waiter, &a) == 0);
	event_wait(&a.ready, 1);
	sleep_ms(50); /* let it block */
	kds_interrupt_raise(a.intr);
	CHECK(pthread_join(t, NULL) == 0);
	CHECK(KDS_IS_ERR(a.got));
	CHECK(KDS_PTR_ERR(a.got) == -EINTR);
	CHECK(a.waited_ms >= 40 && a.waited_ms < 5000);
	kds_resource_set_release(&a.got); /* an error pointer is ignored */
	CHECK(a.got == NULL);
	kds_interrupt_put(a.intr);
	event_destroy(&a.ready);
}

int main(void)
{
	struct kds_resource r;
	struct kds_resource *list[1] = { &r };
	unsigned long excl = 1;
	kds_resource_init(&r);

	struct kds_resource_set *held = kds_waitall(1, &excl, list, KDS_WAIT_BLOCKING);
	CHECK(held && !KDS_IS_ERR(held));
	interrupt_blocked(&r, KDS_WAIT_BLOCKING);
	interrupt_blocked(&r, 60000);
	/* Nothing stayed queued: once the holder releases, r is free at once. */
	kds_resource_set_release(&held);
	CHECK(is_free(&r));

	/* Raised before the wait: a wait granted without blocking leaves it pending; the next
	 * one that has to block returns -EINTR at once and consumes it. */
	struct kds_interrupt *self = kds_interrupt_get();
	CHECK(self != NULL);
	kds_interrupt_raise(self);
	struct kds_resource_set *s = kds_waitall(1, &excl, list, KDS_WAIT_BLOCKING);
	CHECK(s && !KDS_IS_ERR(s));
	/* Now r is held by us: a second exclusive request has to block. */
	struct kds_resource_set *s2 = kds_waitall(1, &excl, list, KDS_WAIT_BLOCKING);
	CHECK(KDS_IS_ERR(s2) && KDS_PTR_ERR(s2) == -EINTR);
	/* Consumed: the next wait times out instead. */
	s2 = kds_waitall(1, &excl, list, 20);
	CHECK(s2 == NULL);
	/* Cleared before the wait: no effect. */
	kds_interrupt_raise(self);
	kds_interrupt_clear(self);
	s2 = kds_waitall(1, &excl, list, 20);
	CHECK(s2 == NULL);
	kds_resource_set_release(&s);
	CHECK(is_free(&r));
	kds_interrupt_put(self);

	/* NULL is ignored. */
	kds_interrupt_raise(NULL);
	kds_interrupt_clear(NULL);
	kds_interrupt_put(NULL);

	kds_resource_term(&r);
	printf("interrupt: ok\n");
	return 0;
}
