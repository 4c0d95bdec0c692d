/* A C port of the 2012 KDS *design* (not its code), the baseline of capi/bench: one global
 * pthread mutex over intrusive per-resource lists of links, a pending count per set, sync
 * waits on a condition variable, direct callbacks after the mutex is dropped. Written from
 * the project's spec (shared/kds-spec.md): the trigger rule is rescanned from the head of a
 * resource's list whenever a link leaves it, which also fixes the original's missed
 * wake-up when a pending link is cancelled from the middle of a list. Header-only; names
 * are sp_* so it links beside libkds. */
#ifndef KDS_SEED_PORT_H
#define KDS_SEED_PORT_H

#include <pthread.h>
#include <stdlib.h>

#define SP_TRIGGERED 1u
#define SP_EXCLUSIVE 2u

struct sp_set;

struct sp_link {
	struct sp_link *prev, *next;
	struct sp_set *parent; /* NULL in a resource's list head */
	unsigned state;
};

struct sp_resource {
	struct sp_link head;
	unsigned long lock_count; /* sync sets with a link here */
};

typedef void (*sp_callback_fn)(void *, void *);

struct sp_set {
	unsigned long n, pending;
	int sync;
	sp_callback_fn cb;
	void *p1, *p2;
	pthread_cond_t cond;
	struct sp_set *next_granted;
	struct sp_resource **res;
	struct sp_link links[];
};

static pthread_mutex_t sp_lock = PTHREAD_MUTEX_INITIALIZER;

static inline void sp_resource_init(struct sp_resource *r)
{
	r->head.prev = r->head.next = &r->head;
	r->head.parent = NULL;
	r->head.state = 0;
	r->lock_count = 0;
}

/* Trigger what the trigger rule allows on r; sets whose last link this triggered are
 * pushed on *granted. Called with sp_lock held. */
static inline void sp_scan(struct sp_resource *r, struct sp_set **granted)
{
	int first = 1;
	for (struct sp_link *l = r->head.next; l != &r->head; l = l->next) {
		int excl = (l->state & SP_EXCLUSIVE) != 0;
		if (excl && !first)
			break;
		if (!(l->state & SP_TRIGGERED)) {
			l->state |= SP_TRIGGERED;
			if (--l->parent->pending == 0) {
				l->parent->next_granted = *granted;
				*granted = l->parent;
			}
		}
		if (excl)
			break;
		first = 0;
	}
}

static inline struct sp_set *sp_new(int n, unsigned long *bitmap, struct sp_resource **res)
{
	struct sp_set *s = malloc(sizeof *s + n * sizeof(struct sp_link));
	if (!s)
		abort();
	s->n = s->pending = n;
	s->res = res;
	for (int i = 0; i < n; i++) {
		s->links[i].parent = s;
		s->links[i].state = (bitmap[i / (8 * sizeof(long))] >> (i % (8 * sizeof(long))) & 1)
					    ? SP_EXCLUSIVE
					    : 0;
	}
	return s;
}

/* Appends every link at once (under the one mutex) and triggers what it can. */
static inline void sp_enqueue(struct sp_set *s, struct sp_set **granted)
{
	for (unsigned long i = 0; i < s->n; i++) {
		struct sp_resource *r = s->res[i];
		struct sp_link *l = &s->links[i];
		if (s->sync)
			r->lock_count++;
		l->prev = r->head.prev;
		l->next = &r->head;
		r->head.prev->next = l;
		r->head.prev = l;
		sp_scan(r, granted);
	}
}

static inline void sp_deliver(struct sp_set *granted)
{
	while (granted) {
		struct sp_set *next = granted->next_granted;
		if (!granted->sync)
			granted->cb(granted->p1, granted->p2);
		granted = next;
	}
}

/* Blocking request (the seed's kds_waitall without timeout). The set keeps `res`. */
static inline struct sp_set *sp_waitall(int n, unsigned long *bitmap, struct sp_resource **res)
{
	struct sp_set *s = sp_new(n, bitmap, res), *granted = NULL;
	s->sync = 1;
	pthread_cond_init(&s->cond, NULL);
	pthread_mutex_lock(&sp_lock);
	sp_enqueue(s, &granted);
	/* A sync enqueue grants only itself (it can only trigger its own links). */
	while (s->pending)
		pthread_cond_wait(&s->cond, &sp_lock);
	pthread_mutex_unlock(&sp_lock);
	return s;
}

/* Async request with a direct callback (the seed's kds_async_waitall, direct cb). */
static inline int sp_async_waitall(struct sp_set **pp, sp_callback_fn cb, void *p1, void *p2, int n,
				   unsigned long *bitmap, struct sp_resource **res)
{
	struct sp_set *s = sp_new(n, bitmap, res), *granted = NULL;
	s->sync = 0;
	s->cb = cb;
	s->p1 = p1;
	s->p2 = p2;
	pthread_mutex_lock(&sp_lock);
	sp_enqueue(s, &granted);
	pthread_mutex_unlock(&sp_lock);
	*pp = s;
	sp_deliver(granted);
	return 0;
}

/* Release (or cancel) *pp; NULL-safe against a racing second call, as in the seed. */
static inline void sp_release(struct sp_set **pp)
{
	struct sp_set *granted = NULL;
	pthread_mutex_lock(&sp_lock);
	struct sp_set *s = *pp;
	if (!s) {
		pthread_mutex_unlock(&sp_lock);
		return;
	}
	*pp = NULL;
	for (unsigned long i = 0; i < s->n; i++) {
		struct sp_link *l = &s->links[i];
		struct sp_resource *r = s->res[i];
		l->prev->next = l->next;
		l->next->prev = l->prev;
		if (s->sync)
			r->lock_count--;
		sp_scan(r, &granted);
	}
	/* Wake sync waiters under the mutex (once it is dropped a woken waiter may free its
	 * set, condition variable included) and keep only the async sets for delivery. */
	struct sp_set *callbacks = NULL;
	while (granted) {
		struct sp_set *g = granted;
		granted = g->next_granted;
		if (g->sync) {
			pthread_cond_signal(&g->cond);
		} else {
			g->next_granted = callbacks;
			callbacks = g;
		}
	}
	pthread_mutex_unlock(&sp_lock);
	sp_deliver(callbacks);
	if (s->sync)
		pthread_cond_destroy(&s->cond);
	free(s);
}

#endif
