/* capi/bench's calls in the 2013 form of kds.h (see bench_2013.h). */
#define KDS_API_VERSION 2013
#include <stdlib.h>

#include "kds.h"
#include "bench_2013.h"

void bench_async_2013(void **set, int noop, void *p, int n, unsigned long *bm, void **res)
{
	if (kds_async_waitall((struct kds_resource_set **)set, noop ? &kds_noop_cb : &kds_stamp_cb, p,
			      NULL, n, bm, (struct kds_resource **)res))
		abort();
}

void bench_release_sync(void **set)
{
	kds_resource_set_release_sync((struct kds_resource_set **)set);
}
