/* The three KDS_FLAG_LOCKED_* actions of an async request towards resources that a
 * kds_waitall caller holds or waits for ("sync-locked"): Fail (-EBUSY, nothing queued),
 * Ignore (granted at once, but blocks later requests), Wait (in line). */
#include "common.h"

static void ran_cb(void *ran, void *unused)
{
	(void)unused;
	__atomic_add_fetch((int *)ran, 1, __ATOMIC_SEQ_CST);
}

static int ran_of(int *ran)
{
	return __atomic_load_n(ran, __ATOMIC_SEQ_CST);
}

struct blocked_arg {
	struct kds_resource *res;
	struct event *done;
};

static void *sync_waiter(void *p)
{
	struct blocked_arg *a = p;
	unsigned long excl = 1;
	struct kds_resource_set *s = kds_waitall(1, &excl, &a->res, KDS_WAIT_BLOCKING);
	CHECK(s && !KDS_IS_ERR(s));
	kds_resource_set_release(&s);
	event_signal(a->done);
	return NULL;
}

int main(void)
{
	struct kds_resource r, other;
	struct kds_resource *list[1] = { &r };
	struct kds_resource *both[2] = { &other, &r };
	unsigned long excl = 1, shared = 0, both_excl = 3;
	struct kds_callback direct;

	kds_resource_init(&r);
	kds_resource_init(&other);
	CHECK(kds_callback_init(&direct, 1, ran_cb) == 0);

	struct kds_resource_set *sync = kds_waitall(1, &excl, list, KDS_WAIT_BLOCKING);
	CHECK(sync && !KDS_IS_ERR(sync));

	/* Fail: -EBUSY, the callback never runs, *pprset untouched, nothing queued. */
	int ran_fail = 0;
	struct kds_resource_set *fail = NULL;
	CHECK(kds_async_waitall(&fail, KDS_FLAG_LOCKED_FAIL, &direct, &ran_fail, NULL, 2,
				&both_excl, both) == -EBUSY);
	CHECK(fail == NULL);
	CHECK(is_free(&other)); /* the other resource of the failed set was not taken */
	/* flags == 0 is Fail too (KDS_FLAG_LOCKED_FAIL is 0). */
	CHECK(kds_async_waitall(&fail, 0, &direct, &ran_fail, NULL, 1, &shared, list) == -EBUSY);

	/* Wait: queued behind the sync holder. */
	int ran_wait = 0;
	struct kds_resource_set *wait = NULL;
	CHECK(kds_async_waitall(&wait, KDS_FLAG_LOCKED_WAIT, &direct, &ran_wait, NULL, 1, &excl,
				list) == 0);
	CHECK(wait != NULL && ran_of(&ran_wait) == 0);

	/* Ignore: granted at once although the sync set holds r exclusively... */
	int ran_ign = 0;
	struct kds_resource_set *ign = NULL;
	CHECK(kds_async_waitall(&ign, KDS_FLAG_LOCKED_IGNORE, &direct, &ran_ign, NULL, 1, &excl,
				list) == 0);
	CHECK(ran_of(&ran_ign) == 1);

	/* ...but requests made after it wait behind it: an async Wait request. */
	int ran_later = 0;
	struct kds_resource_set *later = NULL;
	CHECK(kds_async_waitall(&later, KDS_FLAG_LOCKED_WAIT, &direct, &ran_later, NULL, 1,
				&excl, list) == 0);

	/* Releasing the sync set grants `wait`, which was queued before the ignored set (the
	 * ignored set keeps its place in line; it just did not wait). */
	kds_resource_set_release(&sync);
	CHECK(ran_of(&ran_wait) == 1);
	CHECK(ran_of(&ran_later) == 0);
	kds_resource_set_release(&wait);
	CHECK(ran_of(&ran_later) == 0); /* still behind the ignored set */
	kds_resource_set_release(&ign);
	CHECK(ran_of(&ran_later) == 1);
	kds_resource_set_release(&later);
	CHECK(is_free(&r));

	/* No sync set left: the lock state ended, Fail is granted at once. */
	CHECK(kds_async_waitall(&fail, KDS_FLAG_LOCKED_FAIL, &direct, &ran_fail, NULL, 1, &excl,
				list) == 0);
	CHECK(ran_of(&ran_fail) == 1);
	kds_resource_set_release(&fail);

	/* A sync *waiter* (blocked, not holding) makes the resource sync-locked too. */
	int ran_async = 0;
	struct kds_resource_set *async_holder = NULL;
	CHECK(kds_async_waitall(&async_holder, KDS_FLAG_LOCKED_WAIT, &direct, &ran_async, NULL, 1,
				&excl, list) == 0);
	CHECK(ran_of(&ran_async) == 1);
	/* Not sync-locked yet: a Fail request queues (and is cancelled again). */
	int ran_probe = 0;
	struct kds_resource_set *probe = NULL;
	CHECK(kds_async_waitall(&probe, KDS_FLAG_LOCKED_FAIL, &direct, &ran_probe, NULL, 1,
				&shared, list) == 0);
	kds_resource_set_release(&probe);
	CHECK(probe == NULL);

	struct event done;
	event_init(&done);
	struct blocked_arg arg = { &r, &done };
	pthread_t t;
	CHECK(pthread_create(&t, NULL, sync_waiter, &arg) == 0);
	int busy = 0;
	for (int i = 0; i < 2000 && !busy; i++) {
		int rc = kds_async_waitall(&probe, KDS_FLAG_LOCKED_FAIL, &direct, &ran_probe, NULL,
					   1, &shared, list);
		if (rc == -EBUSY) {
			busy = 1;
			CHECK(probe == NULL);
		} else {
			CHECK(rc == 0);
			kds_resource_set_release(&probe); /* cancel, try again */
			sleep_ms(1);
		}
	}
	CHECK(busy);
	CHECK(ran_of(&ran_probe) == 0); /* every queued probe was cancelled before its grant */
	kds_resource_set_release(&async_holder); /* grants the sync waiter, which releases */
	event_wait(&done, 1);
	CHECK(pthread_join(t, NULL) == 0);
	CHECK(kds_async_waitall(&probe, KDS_FLAG_LOCKED_FAIL, &direct, &ran_probe, NULL, 1,
				&shared, list) == 0);
	CHECK(ran_of(&ran_probe) == 1);
	kds_resource_set_release(&probe);

	/* Flags outside KDS_FLAG_LOCKED_ACTION, and the action 3, are refused. */
	CHECK(kds_async_waitall(&probe, 4, &direct, &ran_probe, NULL, 1, &shared, list) == -EINVAL);
	CHECK(kds_async_waitall(&probe, KDS_FLAG_LOCKED_ACTION, &direct, &ran_probe, NULL, 1,
				&shared, list) == -EINVAL);
	CHECK(probe == NULL);

	CHECK(is_free(&r) && is_free(&other));
	event_destroy(&done);
	kds_callback_term(&direct);
	kds_resource_term(&r);
	kds_resource_term(&other);
	printf("locked_flags: ok\n");
	return 0;
}
