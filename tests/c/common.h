/* Helpers shared by the C tests of libkds (plain C11 + pthreads). Each test is one program
 * that exits 0 on success; CHECK prints the failed condition and exits 1. */
#ifndef KDS_TEST_COMMON_H
#define KDS_TEST_COMMON_H

#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kds.h"

#define CHECK(cond)                                                                      \
	do {                                                                             \
		if (!(cond)) {                                                           \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, \
				#cond);                                                  \
			exit(1);                                                         \
		}                                                                        \
	} while (0)

/* Milliseconds on the monotonic clock. */
static inline double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static inline void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* Whether r can be taken exclusively right now (takes and releases it). */
static inline int is_free(struct kds_resource *r)
{
	unsigned long excl = 1;
	struct kds_resource_set *s = kds_waitall(1, &excl, &r, 0);
	CHECK(!KDS_IS_ERR(s));
	if (!s)
		return 0;
	kds_resource_set_release(&s);
	CHECK(s == NULL);
	return 1;
}

/* Whether r can be taken shared right now (takes and releases it). */
static inline int is_shareable(struct kds_resource *r)
{
	unsigned long excl = 0;
	struct kds_resource_set *s = kds_waitall(1, &excl, &r, 0);
	CHECK(!KDS_IS_ERR(s));
	if (!s)
		return 0;
	kds_resource_set_release(&s);
	return 1;
}

/* A one-shot event with a bounded wait, so a lost wake-up fails instead of hanging. */
struct event {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int count;
};

static inline void event_init(struct event *e)
{
	pthread_mutex_init(&e->lock, NULL);
	pthread_cond_init(&e->cond, NULL);
	e->count = 0;
}

static inline void event_signal(struct event *e)
{
	pthread_mutex_lock(&e->lock);
	e->count++;
	pthread_cond_broadcast(&e->cond);
	pthread_mutex_unlock(&e->lock);
}

/* Waits until count >= n, at most 20 s (then the test fails). */
static inline void event_wait(struct event *e, int n)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 20;
	pthread_mutex_lock(&e->lock);
	while (e->count < n) {
		int rc = pthread_cond_timedwait(&e->cond, &e->lock, &until);
		if (rc == ETIMEDOUT) {
			fprintf(stderr, "event_wait: timed out at %d of %d\n", e->count, n);
			exit(1);
		}
	}
	pthread_mutex_unlock(&e->lock);
}

static inline int event_count(struct event *e)
{
	pthread_mutex_lock(&e->lock);
	int n = e->count;
	pthread_mutex_unlock(&e->lock);
	return n;
}

static inline void event_destroy(struct event *e)
{
	pthread_mutex_destroy(&e->lock);
	pthread_cond_destroy(&e->cond);
}

#endif
