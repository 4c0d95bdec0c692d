/* The half of tests/c/forms built against the 2013 header: a "driver" that knows only the
 * shipped API (7-argument kds_async_waitall, release_sync, int term, the callback's fields). */
#define KDS_API_VERSION 2013
#include "common.h"

#include "forms.h"

#ifdef KDS_FLAG_LOCKED_WAIT
#error "the 2013 form has no KDS_FLAG_LOCKED_* flags"
#endif

static int driver_ran;

static void driver_cb(void *p1, void *p2)
{
	(void)p2;
	driver_ran++;
	*(int *)p1 += 1;
}

size_t driver_callback_size(void)
{
	return sizeof(struct kds_callback);
}

int driver_request(struct kds_resource *res, int exclusive, int *counter,
		   struct kds_resource_set **out)
{
	struct kds_callback cb;
	unsigned long bm = exclusive ? 1 : 0;
	CHECK(kds_callback_init(&cb, 1, driver_cb) == 0);
	CHECK(cb.user_cb == driver_cb && cb.direct == 1);
	int rc = kds_async_waitall(out, &cb, counter, NULL, 1, &bm, &res);
	kds_callback_term(&cb); /* direct: nothing to drain */
	return rc;
}

void driver_release(struct kds_resource_set **s)
{
	kds_resource_set_release_sync(s);
}

int driver_term(struct kds_resource *res)
{
	return kds_resource_term(res);
}

int driver_calls(void)
{
	return driver_ran;
}
