/* Where a direct callback requested inside another direct callback runs (kds.h,
 * kds_async_waitall): not nested inside the outer callback, but just after it returns; or, if
 * the outer callback blocks in kds_waitall, just before it blocks (one of the grants it owes
 * may be what frees the set it waits for). And kds_waitall with a 0 timeout never looks at
 * the thread's interrupt: a probe leaves a raised interrupt for the next wait that blocks. */
#include "common.h"

static struct kds_resource r1, r2, r3;
static struct kds_callback outer_cb, inner_cb;
static struct kds_resource_set *outer_set, *inner_set;
static int inner_ran, outer_returned, inner_before_return, inner_before_block, blocked_got_null;
static int outer_blocks;

static void inner(void *p1, void *p2)
{
	(void)p1;
	(void)p2;
	inner_ran = 1;
	inner_before_return = !outer_returned;
	kds_resource_set_release(&inner_set);
}

static void outer(void *p1, void *p2)
{
	(void)p1;
	(void)p2;
	unsigned long excl = 1;
	struct kds_resource *l2 = &r2, *l3 = &r3;
	CHECK(kds_async_waitall(&inner_set, KDS_FLAG_LOCKED_WAIT, &inner_cb, NULL, NULL, 1, &excl,
				&l2) == 0);
	/* Granted at once, but not run inside this callback. */
	CHECK(!inner_ran);
	if (outer_blocks) {
		/* r3 is held by main: this wait blocks until its timeout, and the inner
		 * callback is delivered before it blocks. */
		struct kds_resource_set *s = kds_waitall(1, &excl, &l3, 30);
		blocked_got_null = s == NULL;
		inner_before_block = inner_ran;
	}
	kds_resource_set_release(&outer_set);
	outer_returned = 1;
}

int main(void)
{
	kds_resource_init(&r1);
	kds_resource_init(&r2);
	kds_resource_init(&r3);
	CHECK(kds_callback_init(&inner_cb, 1, inner) == 0);
	CHECK(kds_callback_init(&outer_cb, 1, outer) == 0);
	unsigned long excl = 1;
	struct kds_resource *l1 = &r1, *l3 = &r3;

	/* The outer callback does not block: the inner one runs after it returns. */
	outer_blocks = 0;
	inner_ran = outer_returned = inner_before_return = 0;
	CHECK(kds_async_waitall(&outer_set, KDS_FLAG_LOCKED_WAIT, &outer_cb, NULL, NULL, 1, &excl,
				&l1) == 0);
	CHECK(outer_returned && inner_ran && !inner_before_return);
	CHECK(outer_set == NULL && inner_set == NULL);

	/* The outer callback blocks in kds_waitall: the inner one runs before it blocks. */
	struct kds_resource_set *held = kds_waitall(1, &excl, &l3, KDS_WAIT_BLOCKING);
	CHECK(held && !KDS_IS_ERR(held));
	outer_blocks = 1;
	inner_ran = outer_returned = inner_before_return = inner_before_block = 0;
	blocked_got_null = 0;
	CHECK(kds_async_waitall(&outer_set, KDS_FLAG_LOCKED_WAIT, &outer_cb, NULL, NULL, 1, &excl,
				&l1) == 0);
	CHECK(outer_returned && inner_ran && blocked_got_null && inner_before_block);
	CHECK(outer_set == NULL && inner_set == NULL);
	CHECK(is_free(&r1) && is_free(&r2));

	/* A 0 timeout is a probe: busy -> NULL, and a raised interrupt stays raised. */
	struct kds_interrupt *self = kds_interrupt_get();
	CHECK(self != NULL);
	kds_interrupt_raise(self);
	for (int i = 0; i < 3; i++)
		CHECK(kds_waitall(1, &excl, &l3, 0) == NULL);
	struct kds_resource_set *s = kds_waitall(1, &excl, &l3, 1000);
	CHECK(KDS_IS_ERR(s) && KDS_PTR_ERR(s) == -EINTR); /* consumed by the wait that blocks */
	CHECK(kds_waitall(1, &excl, &l3, 0) == NULL);
	kds_resource_set_release(&held);
	/* Free: the probe takes it, and still leaves a raised interrupt alone. */
	kds_interrupt_raise(self);
	s = kds_waitall(1, &excl, &l3, 0);
	CHECK(s && !KDS_IS_ERR(s));
	kds_resource_set_release(&s);
	held = kds_waitall(1, &excl, &l3, 0);
	CHECK(held && !KDS_IS_ERR(held));
	s = kds_waitall(1, &excl, &l3, 1000);
	CHECK(KDS_IS_ERR(s) && KDS_PTR_ERR(s) == -EINTR);
	kds_resource_set_release(&held);
	kds_interrupt_put(self);

	kds_callback_term(&outer_cb);
	kds_callback_term(&inner_cb);
	kds_resource_term(&r1);
	kds_resource_term(&r2);
	kds_resource_term(&r3);
	printf("nested_callbacks: ok\n");
	return 0;
}
