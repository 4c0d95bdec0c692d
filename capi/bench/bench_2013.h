/* The calls of capi/bench that use the 2013 form of kds.h (7-argument kds_async_waitall,
 * kds_resource_set_release_sync): defined in forms_2013.c, which is built with
 * KDS_API_VERSION 2013, and called through bench.c's implementation table like the 2012
 * form's calls (same call depth). */
#ifndef KDS_BENCH_2013_H
#define KDS_BENCH_2013_H
/* The direct callback objects bench.c initializes (the struct is the same in both forms). */
extern struct kds_callback kds_stamp_cb, kds_noop_cb;
/* kds_async_waitall in the 2013 form, with kds_noop_cb (noop) or kds_stamp_cb. */
void bench_async_2013(void **set, int noop, void *p, int n, unsigned long *bm, void **res);
/* kds_resource_set_release_sync. */
void bench_release_sync(void **set);
#endif
