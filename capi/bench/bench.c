/* The C-side benchmarks of libkds: every call a driver makes through the C ABI (kds.h over
 * the lock-free engine), in the 2012 form and in the 2013 form (the 7-argument
 * kds_async_waitall, kds_resource_set_release_sync: forms_2013.c), against seed_port.h (the
 * 2012 design: one global pthread mutex over intrusive lists), measured in the same run, the
 * three taking turns run by run; and the cost of kds_resource_term on resources in use. Prints one
 * TSV row per workload and implementation: the median over RUNS runs of each run's figure
 * (ns per request + release for the uncontended and contended rows; for the hand-offs the grant
 * latency: the median for the blocking one, the mean for the direct callback, see there). Run by capi/bench/run.sh.
 *
 *   --quick          smoke run (figures meaningless)
 *   --only SUBSTR    only the workloads whose name contains SUBSTR
 *   --impl kds|kds2013|seed  only one implementation (for callgrind: capi/bench/instructions.sh)
 *   --iters N        iterations of each uncontended run
 *   --runs N         runs per workload
 *   --busy           the contended rows with one core kept busy by another process
 *   --single-threaded  skip the thread started first (see leave_single_threaded) */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kds.h"
#include "seed_port.h"
#include "bench_2013.h"

static int RUNS = 7;
static long UNCONTENDED_ITERS = 1000000;
static int HANDOFF_ITERS = 2000;
static int CALLBACK_ITERS = 200000;
static int CONTENDED_MS = 200;

static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

/* The direct-callback hand-off lasts a few tens of ns: it is stamped with the CPU's counter
 * where there is one (x86_64 TSC, aarch64 CNTVCT; a read costs less than a clock_gettime),
 * converted to ns at the rate calibrated against CLOCK_MONOTONIC at start-up. Elsewhere
 * stamps are ns. */
#if defined(__x86_64__)
#include <x86intrin.h>
static inline uint64_t stamp(void)
{
	return __rdtsc();
}
#define STAMP_SOURCE "TSC"
#elif defined(__aarch64__)
static inline uint64_t stamp(void)
{
	uint64_t v;
	__asm__ volatile("isb; mrs %0, cntvct_el0" : "=r"(v));
	return v;
}
#define STAMP_SOURCE "CNTVCT_EL0"
#else
static inline uint64_t stamp(void)
{
	return now_ns();
}
#define STAMP_SOURCE "CLOCK_MONOTONIC"
#endif
static double ns_per_stamp = 1.0;

static void calibrate_stamps(void)
{
	uint64_t n0 = now_ns(), s0 = stamp();
	while (now_ns() - n0 < 20000000)
		;
	uint64_t n1 = now_ns(), s1 = stamp();
	ns_per_stamp = s1 > s0 ? (double)(n1 - n0) / (double)(s1 - s0) : 1.0;
}

/* glibc takes and gives back a pthread mutex without any atomic instruction while the process
 * has never started a thread (__libc_single_threaded). No process that shares resources
 * between threads runs that way, and the 2012 code's kernel mutex always pays its atomics: so
 * the benchmark starts (and joins) one thread before it measures anything. */
static void *no_work(void *p)
{
	return p;
}

static void leave_single_threaded(void)
{
	pthread_t t;
	if (pthread_create(&t, NULL, no_work, NULL) || pthread_join(t, NULL))
		abort();
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

/* The two direct callbacks: one that does nothing but count, one that stamps a hand-off. */
static unsigned long noop_calls;
static void noop_cb(void *p1, void *p2)
{
	(void)p1;
	(void)p2;
	noop_calls++;
}
static void stamp_cb(void *p1, void *p2);

/* ---- the two implementations behind one small interface ---- */

struct impl {
	const char *name;
	void *(*res_new)(void);
	void (*res_free)(void *res);
	void *(*wait)(int n, unsigned long *bm, void **res);
	void (*release)(void **set);
	/* An async request whose callback runs on the granting thread; `noop`: the callback
	 * that does nothing (else `stamp_cb`). */
	void (*async_direct)(void **set, int noop, void *p, int n, unsigned long *bm,
			     void **res);
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
struct kds_callback kds_stamp_cb, kds_noop_cb; /* also used by forms_2013.c */
static void kds_async(void **s, int noop, void *p, int n, unsigned long *bm, void **res)
{
	if (kds_async_waitall((struct kds_resource_set **)s, KDS_FLAG_LOCKED_WAIT,
			      noop ? &kds_noop_cb : &kds_stamp_cb, p, NULL, n, bm,
			      (struct kds_resource **)res))
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
static void sp_async(void **s, int noop, void *p, int n, unsigned long *bm, void **res)
{
	sp_async_waitall((struct sp_set **)s, noop ? noop_cb : stamp_cb, p, NULL, n, bm,
			 (struct sp_resource **)res);
}

#define NIMPL 3
#define SEED 2 /* impls[SEED] */
static const struct impl impls[NIMPL] = {
	{ "kds (C ABI, lock-free)", kds_res_new, kds_res_free, kds_wait, kds_rel, kds_async },
	{ "kds, 2013 form (7-arg async, release_sync)", kds_res_new, kds_res_free, kds_wait,
	  bench_release_sync, bench_async_2013 },
	{ "seed port (global mutex)", sp_res_new, sp_res_free, sp_wait, sp_rel, sp_async },
};

/* ---- workloads ---- */

/* The loop that capi/bench/instructions.sh counts (callgrind --toggle-collect). */
__attribute__((noinline)) static void measured_uncontended(const struct impl *im, int k, int async,
							   unsigned long *bm, void **res)
{
	for (long i = 0; i < UNCONTENDED_ITERS; i++) {
		void *s;
		if (async)
			im->async_direct(&s, 1, NULL, k, bm, res);
		else
			s = im->wait(k, bm, res);
		im->release(&s);
	}
}

/* ns per request + release of k exclusive resources, one thread: a blocking request
 * (`async` 0) or an async one whose direct callback runs inside the request (1). */
static uint64_t uncontended(const struct impl *im, int k, int async)
{
	void *res[8];
	unsigned long bm = (1ul << k) - 1;
	for (int i = 0; i < k; i++)
		res[i] = im->res_new();
	unsigned long calls = noop_calls;
	uint64_t t0 = now_ns();
	measured_uncontended(im, k, async, &bm, res);
	uint64_t per = (now_ns() - t0) / UNCONTENDED_ITERS;
	if (async && noop_calls - calls != (unsigned long)UNCONTENDED_ITERS)
		abort(); /* every callback ran, inside its request */
	for (int i = 0; i < k; i++)
		im->res_free(res[i]);
	return per;
}

/* The floor under any design that takes each resource with its own atomic operation (as kds
 * does, where the seed takes one global mutex per call): k compare-and-swaps then k
 * fetch-and-subtracts on k words in separate cache lines, nothing else, ns per round. The
 * uncontended kds rows cannot go below it; the seed port pays about four locked operations
 * whatever k is. */
static struct {
	unsigned long word;
	char pad[56];
} floor_words[8];

static uint64_t rmw_floor(int k)
{
	uint64_t t0 = now_ns();
	for (long i = 0; i < UNCONTENDED_ITERS; i++) {
		for (int j = 0; j < k; j++) {
			unsigned long free_word = 0;
			__atomic_compare_exchange_n(&floor_words[j].word, &free_word, 1, 0,
						    __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
		}
		for (int j = 0; j < k; j++)
			__atomic_fetch_sub(&floor_words[j].word, 1, __ATOMIC_RELEASE);
	}
	return (now_ns() - t0) / UNCONTENDED_ITERS;
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
	cb_t1 = stamp();
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
		im->async_direct(&cb_set, 0, NULL, 1, &bm, &res);
		uint64_t t0 = stamp();
		im->release(&held);
		lat[i] = cb_t1 - t0;
	}
	/* The mean, not the median: stamps move in steps of 10 ns on some VMs (this one's TSC
	 * too), and the mean of many samples taken at random phases of that step resolves finer
	 * than the step. Samples over 2 us (an interrupt, a preemption) are left out. */
	double sum = 0;
	long kept = 0;
	for (int i = 0; i < CALLBACK_ITERS; i++) {
		double ns = lat[i] * ns_per_stamp;
		if (ns < 2000) {
			sum += ns;
			kept++;
		}
	}
	uint64_t m = kept ? (uint64_t)(sum / kept + 0.5) : 0;
	free(lat);
	im->res_free(res);
	return m;
}

/* Contended: T threads, each taking sets of k distinct resources out of R, each exclusive
 * with probability 1/2, holding each for about 100 ns, for CONTENDED_MS. ns of wall time per
 * set granted (all threads together). */
#define MAX_R 64
struct contended {
	const struct impl *im;
	void **res;
	int r, k;
	volatile int stop;
	unsigned long ops;
};

static void *contended_thread(void *p)
{
	struct contended *c = p;
	uint64_t x = 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)&x;
	unsigned long ops = 0;
	while (!__atomic_load_n(&c->stop, __ATOMIC_RELAXED)) {
		void *set[8];
		unsigned long bm = 0;
		int n = 0;
		while (n < c->k) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			void *r = c->res[x % c->r];
			int dup = 0;
			for (int i = 0; i < n; i++)
				dup |= set[i] == r;
			if (dup)
				continue;
			if (x >> 40 & 1)
				bm |= 1ul << n;
			set[n++] = r;
		}
		void *s = c->im->wait(c->k, &bm, set);
		spin_ns(100);
		c->im->release(&s);
		ops++;
	}
	__atomic_fetch_add(&c->ops, ops, __ATOMIC_RELAXED);
	return NULL;
}

static uint64_t contended(const struct impl *im, int threads, int r, int k)
{
	void *res[MAX_R];
	for (int i = 0; i < r; i++)
		res[i] = im->res_new();
	struct contended c = { im, res, r, k, 0, 0 };
	pthread_t t[16];
	for (int i = 0; i < threads; i++)
		pthread_create(&t[i], NULL, contended_thread, &c);
	uint64_t t0 = now_ns();
	/* Sleep, not spin: a spinning main thread would be one more busy thread on the cores the
	 * T threads share (on a 2-core machine, T = 2 would run with a core kept busy). */
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += CONTENDED_MS / 1000;
	until.tv_nsec += (long)(CONTENDED_MS % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) != 0)
		;
	__atomic_store_n(&c.stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	uint64_t per = (now_ns() - t0) / (c.ops ? c.ops : 1);
	for (int i = 0; i < r; i++)
		im->res_free(res[i]);
	return per;
}

/* kds_resource_term of n resources (kds only: the seed port's term is a no-op, and the 2012
 * kernel's asserted on a busy resource). `what` 0: ns per term, each resource held by a set
 * granted at once and waited for by an async request queued behind it (with a direct
 * callback that releases its own set); 1: ns per resource of the teardown after those terms
 * (the holder's release grants the waiter, whose callback releases its set, whose release
 * frees the terminated resource); 2: ns per term of n free resources. */
static void release_own_cb(void *p1, void *p2)
{
	(void)p2;
	kds_resource_set_release(p1);
}
static struct kds_callback kds_release_cb;

static uint64_t term_cost(int n, int what)
{
	struct kds_resource *res = malloc(n * sizeof *res);
	struct kds_resource_set **held = calloc(n, sizeof *held);
	struct kds_resource_set **waiting = calloc(n, sizeof *waiting);
	unsigned long excl = 1;
	if (!res || !held || !waiting)
		abort();
	for (int i = 0; i < n; i++) {
		struct kds_resource *l = &res[i];
		kds_resource_init(&res[i]);
		if (what == 2)
			continue;
		held[i] = kds_waitall(1, &excl, &l, 0);
		if (!held[i] || KDS_IS_ERR(held[i]) ||
		    kds_async_waitall(&waiting[i], KDS_FLAG_LOCKED_WAIT, &kds_release_cb, &waiting[i],
				      NULL, 1, &excl, &l))
			abort();
	}
	uint64_t t0 = now_ns();
	for (int i = 0; i < n; i++)
		if (kds_resource_term(&res[i]) != (what == 2 ? 0 : -EBUSY))
			abort();
	uint64_t t1 = now_ns();
	for (int i = 0; i < n; i++)
		kds_resource_set_release(&held[i]);
	uint64_t t2 = now_ns();
	for (int i = 0; i < n; i++)
		if (held[i] || waiting[i])
			abort();
	free(res);
	free(held);
	free(waiting);
	return (what == 1 ? t2 - t1 : t1 - t0) / n;
}

/* Another process keeping one core busy (--busy): the machine a compositor runs on. */
static pid_t busy_child = -1;
static void busy_start(void)
{
	busy_child = fork();
	if (busy_child == 0) {
		for (;;)
			__asm__ volatile("" ::: "memory");
	}
}
static void busy_stop(void)
{
	if (busy_child > 0) {
		kill(busy_child, SIGKILL);
		waitpid(busy_child, NULL, 0);
		busy_child = -1;
	}
}

struct workload {
	const char *name;
	int kind; /* 0 sync, 1 async direct, 2 blocking hand-off, 3 callback hand-off, 4 contended,
		   * 5 the atomic-operation floor (no implementation: printed once), 6 term
		   * (kds only; k = n, threads = what: see term_cost) */
	int k, threads, r;
};

static const struct workload workloads[] = {
	{ "uncontended sync k=1", 0, 1, 1, 0 },
	{ "uncontended sync k=4", 0, 4, 1, 0 },
	{ "uncontended sync k=8", 0, 8, 1, 0 },
	{ "uncontended async direct k=1", 1, 1, 1, 0 },
	{ "uncontended async direct k=4", 1, 4, 1, 0 },
	{ "uncontended async direct k=8", 1, 8, 1, 0 },
	{ "floor 2k locked RMWs k=1", 5, 1, 1, 0 },
	{ "floor 2k locked RMWs k=4", 5, 4, 1, 0 },
	{ "floor 2k locked RMWs k=8", 5, 8, 1, 0 },
	{ "handoff blocking", 2, 1, 2, 0 },
	{ "handoff direct callback", 3, 1, 1, 0 },
	{ "contended T=2 R=8 k=2", 4, 2, 2, 8 },
	{ "contended T=2 R=8 k=4", 4, 4, 2, 8 },
	{ "contended T=8 R=8 k=2", 4, 2, 8, 8 },
	{ "contended T=8 R=8 k=4", 4, 4, 8, 8 },
	{ "term free N=1000", 6, 1000, 2, 0 },
	{ "term busy N=1000", 6, 1000, 0, 0 },
	{ "teardown after term busy N=1000", 6, 1000, 1, 0 },
	{ "term free N=10000", 6, 10000, 2, 0 },
	{ "term busy N=10000", 6, 10000, 0, 0 },
	{ "teardown after term busy N=10000", 6, 10000, 1, 0 },
};

static uint64_t run_one(const struct workload *w, const struct impl *im)
{
	switch (w->kind) {
	case 0:
	case 1:
		return uncontended(im, w->k, w->kind);
	case 2:
		return handoff_blocking(im);
	case 3:
		return handoff_callback(im);
	case 5:
		return rmw_floor(w->k);
	case 6:
		return term_cost(w->k, w->threads);
	default:
		return contended(im, w->threads, w->r, w->k);
	}
}

int main(int argc, char **argv)
{
	const char *only = NULL;
	int impl_first = 0, impl_last = NIMPL - 1, busy = 0, single_threaded = 0;
	for (int a = 1; a < argc; a++) {
		if (strcmp(argv[a], "--quick") == 0) {
			RUNS = 3;
			UNCONTENDED_ITERS = 20000;
			HANDOFF_ITERS = 100;
			CALLBACK_ITERS = 2000;
			CONTENDED_MS = 20;
		} else if (strcmp(argv[a], "--busy") == 0) {
			busy = 1;
		} else if (strcmp(argv[a], "--single-threaded") == 0) {
			single_threaded = 1;
		} else if (a + 1 < argc && strcmp(argv[a], "--only") == 0) {
			only = argv[++a];
		} else if (a + 1 < argc && strcmp(argv[a], "--iters") == 0) {
			UNCONTENDED_ITERS = atol(argv[++a]);
		} else if (a + 1 < argc && strcmp(argv[a], "--runs") == 0) {
			RUNS = atoi(argv[++a]);
		} else if (a + 1 < argc && strcmp(argv[a], "--impl") == 0) {
			a++;
			impl_first = impl_last = strcmp(argv[a], "kds") == 0	   ? 0
						 : strcmp(argv[a], "kds2013") == 0 ? 1
										   : SEED;
		} else {
			fprintf(stderr, "bench: unknown argument %s\n", argv[a]);
			return 2;
		}
	}
	if (RUNS < 1 || RUNS > 15 || UNCONTENDED_ITERS < 1) {
		fprintf(stderr, "bench: --runs must be 1..15, --iters positive\n");
		return 2;
	}
	if (!single_threaded)
		leave_single_threaded();
	calibrate_stamps();
	fprintf(stderr, "bench: direct-callback hand-off stamped with %s (%.4f ns per tick)%s\n",
		STAMP_SOURCE, ns_per_stamp, single_threaded ? "; single-threaded process" : "");
	if (kds_callback_init(&kds_stamp_cb, 1, stamp_cb) || kds_callback_init(&kds_noop_cb, 1, noop_cb) ||
	    kds_callback_init(&kds_release_cb, 1, release_own_cb))
		abort();
	printf("workload\timplementation\tmedian_ns\truns\n");
	for (size_t w = 0; w < sizeof workloads / sizeof *workloads; w++) {
		const struct workload *wl = &workloads[w];
		char name[96];
		snprintf(name, sizeof name, "%s%s", wl->name, busy && wl->kind == 4 ? " busy" : "");
		if (only && !strstr(name, only))
			continue;
		if (busy && wl->kind == 4)
			busy_start();
		/* The floor runs once (no implementation); term runs kds's 2012 entry points. */
		int single = wl->kind == 5 || wl->kind == 6;
		uint64_t r[NIMPL][16];
		for (int run = 0; run < RUNS; run++) {
			for (int j = 0; j < NIMPL; j++) {
				int i = (j + run) % NIMPL; /* rotate which goes first */
				if (i >= impl_first && i <= impl_last && !(single && i != impl_first))
					r[i][run] = run_one(wl, &impls[i]);
			}
		}
		busy_stop();
		for (int i = impl_first; i <= impl_last; i++) {
			if (single && i != impl_first)
				continue; /* one line */
			if (wl->kind == 6 && i == SEED)
				continue; /* kds only */
			printf("%s\t%s\t%llu\t%d\n", name,
			       wl->kind == 5 ? "atomics only (k CAS + k fetch_sub)" : impls[i].name,
			       (unsigned long long)median(r[i], RUNS), RUNS);
		}
		fflush(stdout);
	}
	kds_callback_term(&kds_stamp_cb);
	kds_callback_term(&kds_noop_cb);
	kds_callback_term(&kds_release_cb);
	return 0;
}
