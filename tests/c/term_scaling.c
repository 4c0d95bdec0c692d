/* kds_resource_term at scale, on resources in use (the two cases that were quadratic: each
 * term retried every busy resource kept by the earlier ones, and a kept resource was freed
 * only by a later term):
 *   1. 10,000 resources, each held by a set granted at once and waited for by an async
 *      request queued behind it: all terminated (-EBUSY each), then the holders released;
 *   2. 10,000 resources in use by 1,000 sets of 64 (held, or queued behind them), 5,000 of
 *      them terminated (-EBUSY for those in use), then every set released or cancelled.
 * Each busy resource must be freed by its last release with no later call: LeakSanitizer and
 * valgrind (.ci/capi.sh) fail the run if one is not. The term phase's time is printed (the
 * cost per term is measured in capi/bench: "term busy"). */
#include "common.h"

#define N 10000
#define SETS 1000
#define PER_SET 64
#define TERMS 5000

static int granted;
static void count_cb(void *p1, void *p2)
{
	(void)p2;
	granted++;
	kds_resource_set_release(p1); /* the waiter releases its set from its callback */
}

static unsigned long rng = 88172645463325252ul;
static unsigned long next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

int main(void)
{
	struct kds_callback direct;
	CHECK(kds_callback_init(&direct, 1, count_cb) == 0);
	unsigned long excl = 1;

	/* 1. Held and waited for, each. */
	struct kds_resource *res = calloc(N, sizeof *res);
	struct kds_resource_set **held = calloc(N, sizeof *held);
	struct kds_resource_set **waiting = calloc(N, sizeof *waiting);
	CHECK(res && held && waiting);
	for (int i = 0; i < N; i++) {
		struct kds_resource *l = &res[i];
		kds_resource_init(&res[i]);
		held[i] = kds_waitall(1, &excl, &l, 0);
		CHECK(held[i] && !KDS_IS_ERR(held[i]));
		CHECK(kds_async_waitall(&waiting[i], KDS_FLAG_LOCKED_WAIT, &direct, &waiting[i], NULL, 1,
					&excl, &l) == 0);
		CHECK(waiting[i] != NULL);
	}
	double t0 = now_ms();
	for (int i = 0; i < N; i++)
		CHECK(kds_resource_term(&res[i]) == -EBUSY);
	double t1 = now_ms();
	memset(res, 0x5a, N * sizeof *res); /* the structs are the caller's again */
	free(res);
	for (int i = 0; i < N; i++)
		kds_resource_set_release(&held[i]);
	double t2 = now_ms();
	CHECK(granted == N);
	for (int i = 0; i < N; i++)
		CHECK(held[i] == NULL && waiting[i] == NULL);
	printf("term_scaling: %d held and waited-for resources: terms %.1f ms, releases %.1f ms\n", N,
	       t1 - t0, t2 - t1);

	/* 2. 1,000 sets of 64 over 10,000 resources; 5,000 of them terminated. */
	res = calloc(N, sizeof *res);
	struct kds_resource_set **sets = calloc(SETS, sizeof *sets);
	struct kds_resource **lists = calloc((size_t)SETS * PER_SET, sizeof *lists);
	char *dead = calloc(N, 1);
	CHECK(res && sets && lists && dead);
	for (int i = 0; i < N; i++)
		kds_resource_init(&res[i]);
	int pending = 0;
	for (int s = 0; s < SETS; s++) {
		struct kds_resource **l = &lists[(size_t)s * PER_SET];
		unsigned long bm[PER_SET / (8 * sizeof(unsigned long)) + 1] = { 0 };
		for (int j = 0; j < PER_SET; j++) {
			l[j] = &res[next() % N]; /* repeats merge, exclusive winning */
			if (next() & 1)
				bm[j / (8 * sizeof(unsigned long))] |= 1ul << (j % (8 * sizeof(unsigned long)));
		}
		sets[s] = kds_waitall(PER_SET, bm, l, 0);
		CHECK(!KDS_IS_ERR(sets[s]));
		if (!sets[s]) {
			/* Busy: queue it instead (its callback releases it: a no-op counter here). */
			CHECK(kds_async_waitall(&sets[s], KDS_FLAG_LOCKED_WAIT, &direct, &sets[s], NULL,
						PER_SET, bm, l) == 0);
			pending++;
		}
	}
	int busy = 0, free_now = 0;
	granted = 0;
	t0 = now_ms();
	for (int k = 0; k < TERMS; k++) {
		int i = (int)(next() % N);
		while (dead[i])
			i = (i + 1) % N;
		dead[i] = 1;
		int rc = kds_resource_term(&res[i]);
		CHECK(rc == 0 || rc == -EBUSY);
		busy += rc == -EBUSY;
		free_now += rc == 0;
	}
	t1 = now_ms();
	CHECK(busy > 0 && free_now > 0);
	for (int s = 0; s < SETS; s++)
		kds_resource_set_release(&sets[s]); /* held ones release, their waiters run */
	t2 = now_ms();
	for (int s = 0; s < SETS; s++)
		CHECK(sets[s] == NULL);
	for (int i = 0; i < N; i++)
		if (!dead[i])
			CHECK(kds_resource_term(&res[i]) == 0); /* everything is free again */
	printf("term_scaling: %d sets of %d (%d queued), %d terms (%d busy): terms %.1f ms, "
	       "releases %.1f ms\n",
	       SETS, PER_SET, pending, TERMS, busy, t1 - t0, t2 - t1);
	free(res);
	free(sets);
	free(lists);
	free(dead);
	free(held);
	free(waiting);
	kds_callback_term(&direct);
	printf("term_scaling: ok\n");
	return 0;
}
