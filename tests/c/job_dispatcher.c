/* A GPU job dispatcher's sequence (2013 form), as Mali's kbase used KDS (written here from
 * what the driver does, not from its code):
 *   - submit: with the context lock held, build the job's resource list and bitmap on the
 *     heap, kds_async_waitall with the context's deferred callback object, free the list and
 *     bitmap right after the call;
 *   - the worker callback takes the context lock (which the submitter may hold at that
 *     moment) and moves the job to the hardware queue;
 *   - two "hardware" threads run the jobs (checking that the modes hold: an exclusive buffer
 *     has no other user, a shared one no writer, and writers of a buffer run in submission
 *     order) and complete each with kds_resource_set_release_sync, then free the job;
 *   - a zap thread repeatedly cancels every job still waiting for its buffers, with
 *     callbacks queued or running, with kds_resource_set_release_sync outside the lock, and
 *     frees each such job at once.
 * After a job's release_sync returns, its callback must never start or still run: each job's
 * callback checks a flag set after that call (and ASan/valgrind catch any touch of a freed
 * job). Every job ends exactly once, completed or zapped. */
#define KDS_API_VERSION 2013
#include "common.h"

#include <sched.h>

#define JOBS 20000
#define BUFS 8

enum state { WAITING, READY, CANCELLING };

struct job {
	int id;
	enum state state;
	int out, in; /* out: written (exclusive); in: read (shared); in may be -1 */
	struct kds_resource_set *rset;
	struct job *next; /* the hardware queue, or the waiting list */
};

static struct context {
	pthread_mutex_t lock;
	pthread_cond_t work;
	struct kds_callback cb;
	struct job *hw_head, **hw_tail;
	struct job *waiting; /* submitted, callback not yet run */
	int submitted_all;
} ctx;

static struct kds_resource bufs[BUFS];
static int writers[BUFS], readers[BUFS], last_writer[BUFS];
static unsigned char synced[JOBS]; /* 1 once the job's release_sync returned */
static int completed, zapped, callbacks;

static void unlink_waiting(struct job *j)
{
	for (struct job **p = &ctx.waiting; *p; p = &(*p)->next)
		if (*p == j) {
			*p = j->next;
			return;
		}
}

/* The worker callback: the dependencies are met. */
static void dep_clear(void *p1, void *p2)
{
	(void)p2;
	struct job *j = p1;
	int id = j->id;
	CHECK(!__atomic_load_n(&synced[id], __ATOMIC_SEQ_CST));
	pthread_mutex_lock(&ctx.lock);
	callbacks++;
	if (j->state == WAITING) {
		unlink_waiting(j);
		j->state = READY;
		j->next = NULL;
		*ctx.hw_tail = j;
		ctx.hw_tail = &j->next;
		pthread_cond_signal(&ctx.work);
	}
	/* CANCELLING: the zap owns the job; nothing to do. */
	pthread_mutex_unlock(&ctx.lock);
	CHECK(!__atomic_load_n(&synced[id], __ATOMIC_SEQ_CST));
}

static void submit(int id, int out, int in)
{
	struct job *j = calloc(1, sizeof *j);
	CHECK(j != NULL);
	j->id = id;
	j->out = out;
	j->in = in;
	pthread_mutex_lock(&ctx.lock);
	j->state = WAITING;
	j->next = ctx.waiting;
	ctx.waiting = j;
	int n = in >= 0 ? 2 : 1;
	struct kds_resource **list = malloc(n * sizeof *list);
	unsigned long *bitmap = calloc(1, sizeof *bitmap);
	CHECK(list && bitmap);
	list[0] = &bufs[out];
	bitmap[0] = 1; /* resource 0 exclusive */
	if (in >= 0)
		list[1] = &bufs[in];
	/* The lock is held: the callback (deferred) takes it on the worker. */
	CHECK(kds_async_waitall(&j->rset, &ctx.cb, j, NULL, n, bitmap, list) == 0);
	free(list);
	free(bitmap);
	pthread_mutex_unlock(&ctx.lock);
}

static void *hardware(void *p)
{
	(void)p;
	for (;;) {
		pthread_mutex_lock(&ctx.lock);
		while (!ctx.hw_head && !(ctx.submitted_all && !ctx.waiting))
			pthread_cond_wait(&ctx.work, &ctx.lock);
		struct job *j = ctx.hw_head;
		if (!j) {
			pthread_mutex_unlock(&ctx.lock);
			return NULL;
		}
		ctx.hw_head = j->next;
		if (!ctx.hw_head)
			ctx.hw_tail = &ctx.hw_head;
		pthread_mutex_unlock(&ctx.lock);

		/* Run: the modes hold, and writers of a buffer come in submission order. */
		CHECK(__atomic_fetch_add(&writers[j->out], 1, __ATOMIC_SEQ_CST) == 0);
		CHECK(__atomic_load_n(&readers[j->out], __ATOMIC_SEQ_CST) == 0);
		if (j->in >= 0 && j->in != j->out) {
			__atomic_fetch_add(&readers[j->in], 1, __ATOMIC_SEQ_CST);
			CHECK(__atomic_load_n(&writers[j->in], __ATOMIC_SEQ_CST) == 0);
		}
		CHECK(last_writer[j->out] < j->id);
		last_writer[j->out] = j->id;
		for (int k = 0; k < j->id % 50; k++)
			__asm__ volatile("" ::: "memory");
		if (j->in >= 0 && j->in != j->out)
			__atomic_fetch_sub(&readers[j->in], 1, __ATOMIC_SEQ_CST);
		__atomic_fetch_sub(&writers[j->out], 1, __ATOMIC_SEQ_CST);

		/* Complete. */
		int id = j->id;
		kds_resource_set_release_sync(&j->rset);
		__atomic_store_n(&synced[id], 1, __ATOMIC_SEQ_CST);
		CHECK(j->rset == NULL);
		free(j);
		pthread_mutex_lock(&ctx.lock);
		completed++;
		pthread_cond_broadcast(&ctx.work);
		pthread_mutex_unlock(&ctx.lock);
	}
}

/* Cancels every job still waiting for its buffers. */
static int zap(void)
{
	pthread_mutex_lock(&ctx.lock);
	struct job *list = ctx.waiting;
	ctx.waiting = NULL;
	for (struct job *j = list; j; j = j->next)
		j->state = CANCELLING;
	pthread_mutex_unlock(&ctx.lock);
	int n = 0;
	while (list) {
		struct job *j = list;
		list = j->next;
		int id = j->id;
		/* Outside the lock: a running callback waits for it, and release_sync for the
		 * callback. */
		kds_resource_set_release_sync(&j->rset);
		__atomic_store_n(&synced[id], 1, __ATOMIC_SEQ_CST);
		free(j);
		n++;
	}
	pthread_mutex_lock(&ctx.lock);
	zapped += n;
	pthread_cond_broadcast(&ctx.work);
	pthread_mutex_unlock(&ctx.lock);
	return n;
}

static volatile int stop_zapping;
static void *zapper(void *p)
{
	(void)p;
	while (!stop_zapping) {
		zap();
		for (int k = 0; k < 2000; k++)
			sched_yield();
	}
	return NULL;
}

int main(void)
{
	pthread_mutex_init(&ctx.lock, NULL);
	pthread_cond_init(&ctx.work, NULL);
	ctx.hw_tail = &ctx.hw_head;
	CHECK(kds_callback_init(&ctx.cb, 0, dep_clear) == 0);
	for (int i = 0; i < BUFS; i++) {
		kds_resource_init(&bufs[i]);
		last_writer[i] = -1;
	}
	pthread_t hw[2], z;
	for (int i = 0; i < 2; i++)
		CHECK(pthread_create(&hw[i], NULL, hardware, NULL) == 0);
	CHECK(pthread_create(&z, NULL, zapper, NULL) == 0);
	for (int id = 0; id < JOBS; id++) {
		int out = (id * 5) % BUFS, in = id % 3 ? (id * 3 + 1) % BUFS : -1;
		submit(id, out, in);
		if (id % 64 == 0)
			sched_yield();
	}
	stop_zapping = 1;
	CHECK(pthread_join(z, NULL) == 0);
	pthread_mutex_lock(&ctx.lock);
	ctx.submitted_all = 1;
	pthread_cond_broadcast(&ctx.work);
	pthread_mutex_unlock(&ctx.lock);
	for (int i = 0; i < 2; i++)
		CHECK(pthread_join(hw[i], NULL) == 0);
	CHECK(completed + zapped == JOBS);
	CHECK(ctx.waiting == NULL && ctx.hw_head == NULL);
	kds_callback_term(&ctx.cb);
	for (int i = 0; i < JOBS; i++)
		CHECK(synced[i]);
	for (int i = 0; i < BUFS; i++) {
		CHECK(is_free(&bufs[i]));
		CHECK(kds_resource_term(&bufs[i]) == 0);
	}
	printf("job_dispatcher: %d jobs, %d completed, %d zapped, %d callbacks: ok\n", JOBS,
	       completed, zapped, callbacks);
	return 0;
}
