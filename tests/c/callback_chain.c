/* A callback that releases its own set and requests the next one (the seed's review asked
 * what happens then). Direct: a chain of 100000 runs inside the first kds_async_waitall
 * without growing the stack (a recursive implementation would overflow it). Deferred: the
 * same on the worker. Contended: two chains on one resource alternate, each callback
 * checking that it holds the resource alone. */
#include "common.h"

#define DIRECT_CHAIN 100000
#define DEFERRED_CHAIN 5000
#define CONTENDED_CHAIN 5000

struct chain {
	struct kds_resource_set *set;
	struct kds_callback *cb;
	struct kds_resource *res;
	int n, limit;
	struct event *done;
	int *inside; /* contended: how many chains are inside their callback */
};

static void step(void *p, void *unused)
{
	(void)unused;
	struct chain *c = p;
	unsigned long excl = 1;
	if (c->inside)
		CHECK(__atomic_add_fetch(c->inside, 1, __ATOMIC_SEQ_CST) == 1);
	c->n++;
	if (c->inside)
		__atomic_sub_fetch(c->inside, 1, __ATOMIC_SEQ_CST);
	kds_resource_set_release(&c->set);
	CHECK(c->set == NULL);
	if (c->n < c->limit) {
		CHECK(kds_async_waitall(&c->set, KDS_FLAG_LOCKED_WAIT, c->cb, c, NULL, 1, &excl,
					&c->res) == 0);
	} else if (c->done) {
		event_signal(c->done);
	}
}

int main(void)
{
	struct kds_resource r;
	struct kds_callback direct, deferred, deferred2;
	unsigned long excl = 1;
	kds_resource_init(&r);
	CHECK(kds_callback_init(&direct, 1, step) == 0);
	CHECK(kds_callback_init(&deferred, 0, step) == 0);
	CHECK(kds_callback_init(&deferred2, 0, step) == 0);

	/* Direct: the whole chain runs before the first request returns. */
	struct chain c = { NULL, &direct, &r, 0, DIRECT_CHAIN, NULL, NULL };
	CHECK(kds_async_waitall(&c.set, KDS_FLAG_LOCKED_WAIT, &direct, &c, NULL, 1, &excl,
				&c.res) == 0);
	CHECK(c.n == DIRECT_CHAIN);
	CHECK(c.set == NULL);
	CHECK(is_free(&r));

	/* Deferred: on the callback object's worker. */
	struct event done;
	event_init(&done);
	struct chain d = { NULL, &deferred, &r, 0, DEFERRED_CHAIN, &done, NULL };
	CHECK(kds_async_waitall(&d.set, KDS_FLAG_LOCKED_WAIT, &deferred, &d, NULL, 1, &excl,
				&d.res) == 0);
	event_wait(&done, 1);
	CHECK(d.n == DEFERRED_CHAIN);
	CHECK(is_free(&r));

	/* Contended: two deferred chains (two workers) and a direct one on one resource. */
	int inside = 0;
	struct chain e1 = { NULL, &deferred, &r, 0, CONTENDED_CHAIN, &done, &inside };
	struct chain e2 = { NULL, &deferred2, &r, 0, CONTENDED_CHAIN, &done, &inside };
	struct chain e3 = { NULL, &direct, &r, 0, CONTENDED_CHAIN, &done, &inside };
	struct kds_resource_set *hold = kds_waitall(1, &excl, &c.res, KDS_WAIT_BLOCKING);
	CHECK(hold && !KDS_IS_ERR(hold));
	CHECK(kds_async_waitall(&e1.set, KDS_FLAG_LOCKED_WAIT, &deferred, &e1, NULL, 1, &excl,
				&e1.res) == 0);
	CHECK(kds_async_waitall(&e2.set, KDS_FLAG_LOCKED_WAIT, &deferred2, &e2, NULL, 1, &excl,
				&e2.res) == 0);
	CHECK(kds_async_waitall(&e3.set, KDS_FLAG_LOCKED_WAIT, &direct, &e3, NULL, 1, &excl,
				&e3.res) == 0);
	kds_resource_set_release(&hold); /* start them */
	event_wait(&done, 4);
	CHECK(e1.n == CONTENDED_CHAIN && e2.n == CONTENDED_CHAIN && e3.n == CONTENDED_CHAIN);
	CHECK(is_free(&r));

	kds_callback_term(&direct);
	kds_callback_term(&deferred);
	kds_callback_term(&deferred2);
	kds_resource_term(&r);
	event_destroy(&done);
	printf("callback_chain: ok\n");
	return 0;
}
