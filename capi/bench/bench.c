/* The C-side benchmarks of libkds: the uncontended and hand-off workloads through the C ABI
 * (kds.h over the lock-free engine) against seed_port.h (the 2012 design: one global pthread
 * mutex over intrusive lists), measured in the same run. Prints one TSV row per workload and
 * implementation: the median over RUNS runs of each run's figure (ns per acquire+release for
 * uncontended, median grant latency for the hand-offs). Run by capi/bench/run.sh. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kds.h"
#include "seed_port.h"

static int RUNS = 7;
static long UNCONTENDED_ITERS = 1000000;
static int HANDOFF_ITERS = 2000;
static int CALLBACK_ITERS = 200000;

static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

static void spin_ns(uint64_t ns)
{
	uint64_t until = now_ns() + ns;
	while (now_ns() < until)
		;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static uint64_t median(uint64_t *v, int n)
{
	qsort(v, n, sizeof *v, cmp_u64);
	return v[n / 2];
}

/* ---- the two implementations behind one small interface ---- */

struct impl {
	const char *name;
	void *(*res_new)(void);
	void (*res_free)(void *res);
	void *(*wait)(int n, unsigned long *bm, void **res);
	void (*release)(void **set);
	void (*async_direct)(void **set, void (*cb)(void *, void *), void *p, int n,
			     unsigned long *bm, void **res);
};

static void *kds_res_new(void)
{
	struct kds_resource *r = malloc(sizeof *r);
	kds_resource_init(r);
	return r;
}
static void kds_res_free(void *r)
{
	kds_resource_term(r);
	free(r);
}
static void *kds_wait(int n, unsigned long *bm, void **res)
{
	void *s = kds_waitall(n, bm, (struct kds_resource **)res, KDS_WAIT_BLOCKING);
	if (!s || KDS_IS_ERR(s))
		abort();
	return s;
}
static void kds_rel(void **s)
{
	kds_resource_set_release((struct kds_resource_set **)s);
}
static struct kds_callback kds_direct_cb;
static void kds_async(void **s, void (*cb)(void *, void *), void *p, int n, unsigned long *bm,
		      void **res)
{
	(void)cb; /* kds_direct_cb was initialized with it */
	if (kds_async_waitall((struct kds_resource_set **)s, KDS_FLAG_LOCKED_WAIT, &kds_direct_cb, p,
			      NULL, n, bm, (struct kds_resource **)res))
		abort();
}

static void *sp_res_new(void)
{
	struct sp_resource *r = malloc(sizeof *r);
	sp_resource_init(r);
	return r;
}
static void sp_res_free(void *r)
{
	free(r);
}
static void *sp_wait(int n, unsigned long *bm, void **res)
{
	return sp_waitall(n, bm, (struct sp_resource **)res);
}
static void sp_rel(void **s)
{
	sp_release((struct sp_set **)s);
}
static void sp_async(void **s, void (*cb)(void *, void *), void *p, int n, unsigned long *bm,
		     void **res)
{
	sp_async_waitall((struct sp_set **)s, cb, p, NULL, n, bm, (struct sp_resource **)res);
}

static const struct impl impls[2] = {
	{ "kds (C ABI, lock-free)", kds_res_new, kds_res_free, kds_wait, kds_rel, kds_async },
	{ "seed port (global mutex)", sp_res_new, sp_res_free, sp_wait, sp_rel, sp_async },
};

/* ---- workloads ---- */

/* ns per acquire + release of k exclusive resources, one thread. */
static uint64_t uncontended(const struct impl *im, int k)
{
	void *res[8];
	unsigned long bm = (1ul << k) - 1;
	for (int i = 0; i < k; i++)
		res[i] = im->res_new();
	uint64_t t0 = now_ns();
	for (long i = 0; i < UNCONTENDED_ITERS; i++) {
		void *s = im->wait(k, &bm, res);
		im->release(&s);
	}
	uint64_t per = (now_ns() - t0) / UNCONTENDED_ITERS;
	for (int i = 0; i < k; i++)
		im->res_free(res[i]);
	return per;
}

/* Blocking hand-off: a waiter blocked in wait(); the holder releases at t0; the waiter stamps
 * t1 on return. Median t1 - t0. */
struct handoff {
	const struct impl *im;
	void *res;
	volatile int ready, done;
	volatile uint64_t t0;
	uint64_t *lat;
};

static void *handoff_waiter(void *p)
{
	struct handoff *h = p;
	unsigned long bm = 1;
	for (int i = 1; i <= HANDOFF_ITERS; i++) {
		while (__atomic_load_n(&h->ready, __ATOMIC_SEQ_CST) != i)
			sched_yield();
		void *s = h->im->wait(1, &bm, &h->res);
		uint64_t t1 = now_ns();
		h->lat[i - 1] = t1 - __atomic_load_n(&h->t0, __ATOMIC_SEQ_CST);
		h->im->release(&s);
		__atomic_store_n(&h->done, i, __ATOMIC_SEQ_CST);
	}
	return NULL;
}

static uint64_t handoff_blocking(const struct impl *im)
{
	struct handoff h = { im, im->res_new(), 0, 0, 0, calloc(HANDOFF_ITERS, sizeof(uint64_t)) };
	unsigned long bm = 1;
	pthread_t t;
	pthread_create(&t, NULL, handoff_waiter, &h);
	for (int i = 1; i <= HANDOFF_ITERS; i++) {
		void *s = im->wait(1, &bm, &h.res);
		__atomic_store_n(&h.ready, i, __ATOMIC_SEQ_CST);
		spin_ns(50000); /* let the waiter queue and block */
		__atomic_store_n(&h.t0, now_ns(), __ATOMIC_SEQ_CST);
		im->release(&s);
		while (__atomic_load_n(&h.done, __ATOMIC_SEQ_CST) != i)
			sched_yield(); /* not measured: leave the core to the waiter */
	}
	pthread_join(t, NULL);
	uint64_t m = median(h.lat, HANDOFF_ITERS);
	free(h.lat);
	im->res_free(h.res);
	return m;
}

/* Direct-callback hand-off: a set held, an async request with a direct callback queued
 * behind it; release at t0 runs the callback, which stamps t1 and releases its set. */
static uint64_t cb_t1;
static void *cb_set;
static const struct impl *cb_impl;
static void stamp_cb(void *p1, void *p2)
{
	(void)p1;
	(void)p2;
	cb_t1 = now_ns();
	cb_impl->release(&cb_set);
}

static uint64_t handoff_callback(const struct impl *im)
{
	void *res = im->res_new();
	unsigned long bm = 1;
	uint64_t *lat = calloc(CALLBACK_ITERS, sizeof *lat);
	cb_impl = im;
	for (int i = 0; i < CALLBACK_ITERS; i++) {
		void *held = im->wait(1, &bm, &res);
		im->async_direct(&cb_set, stamp_cb, NULL, 1, &bm, &res);
		uint64_t t0 = now_ns();
		im->release(&held);
		lat[i] = cb_t1 - t0;
	}
	uint64_t m = median(lat, CALLBACK_ITERS);
	free(lat);
	im->res_free(res);
	return m;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--quick") == 0) {
		RUNS = 3;
		UNCONTENDED_ITERS = 20000;
		HANDOFF_ITERS = 100;
		CALLBACK_ITERS = 2000;
	}
	if (kds_callback_init(&kds_direct_cb, 1, stamp_cb))
		abort();
	printf("workload\timplementation\tmedian_ns\truns\n");
	const char *names[4] = { "uncontended k=1", "uncontended k=4", "handoff blocking",
				 "handoff direct callback" };
	for (int w = 0; w < 4; w++) {
		uint64_t r[2][16];
		for (int run = 0; run < RUNS; run++) {
			for (int j = 0; j < 2; j++) {
				int i = (j + run) % 2; /* alternate which goes first */
				const struct impl *im = &impls[i];
				r[i][run] = w == 0   ? uncontended(im, 1)
					    : w == 1 ? uncontended(im, 4)
					    : w == 2 ? handoff_blocking(im)
						     : handoff_callback(im);
			}
		}
		for (int i = 0; i < 2; i++)
			printf("%s\t%s\t%llu\t%d\n", names[w], impls[i].name,
			       (unsigned long long)median(r[i], RUNS), RUNS);
		fflush(stdout);
	}
	kds_callback_term(&kds_direct_cb);
	return 0;
}
