/* kds_resource_term while sets use the resource (kds.h: -EBUSY, and the resource stays
 * allocated until they are released): sets granted at once borrow their resources from the C
 * structs, so this checks that a term never frees a resource under them. Sequential: a term
 * while a set holds the resource, a term while a set waits for it, then their releases.
 * Racing: one thread releases sets (granted at once, and ones that queued) while another
 * terminates their resources, many times. Valgrind (.ci/capi.sh) flags any access to a freed
 * resource (AddressSanitizer does not: the Rust library is not instrumented); with a term that
 * frees at once, it reports the release's read of the freed resource. The leak checks of both
 * (LeakSanitizer, valgrind) fail if a resource terminated in use is never freed. */
#include "common.h"

#include <sched.h>

#define RACES 1000

struct race {
	struct kds_resource *res;
	struct kds_resource_set *volatile set;
	volatile int round, released;
};

static struct event granted;
static struct kds_resource_set *waiting;

static void on_grant(void *p1, void *p2)
{
	(void)p1;
	(void)p2;
	kds_resource_set_release(&waiting);
	event_signal(&granted);
}

static void *releaser(void *p)
{
	struct race *r = p;
	for (int i = 1; i <= RACES; i++) {
		while (__atomic_load_n(&r->round, __ATOMIC_ACQUIRE) != i)
			sched_yield();
		struct kds_resource_set *s = r->set;
		kds_resource_set_release(&s);
		CHECK(s == NULL);
		__atomic_store_n(&r->released, i, __ATOMIC_RELEASE);
	}
	return NULL;
}

int main(void)
{
	unsigned long excl = 1, shared = 0;

	/* Held (granted at once, so borrowed) and terminated, then released. */
	struct kds_resource a;
	struct kds_resource *la = &a;
	kds_resource_init(&a);
	struct kds_resource_set *held = kds_waitall(1, &excl, &la, 0);
	CHECK(held && !KDS_IS_ERR(held));
	CHECK(kds_resource_term(&a) == -EBUSY);
	CHECK(kds_waitall(1, &excl, &la, 0) == KDS_ERR_PTR(-EINVAL)); /* terminated */
	CHECK(kds_resource_term(&a) == -EINVAL);			/* and only once */
	kds_resource_set_release(&held);

	/* Held shared twice (borrowed), terminated, then released one by one. */
	struct kds_resource b;
	struct kds_resource *lb = &b;
	kds_resource_init(&b);
	struct kds_resource_set *s1 = kds_waitall(1, &shared, &lb, 0);
	struct kds_resource_set *s2 = kds_waitall(1, &shared, &lb, 0);
	CHECK(s1 && !KDS_IS_ERR(s1) && s2 && !KDS_IS_ERR(s2));
	CHECK(kds_resource_term(&b) == -EBUSY);
	memset(&b, 0xa5, sizeof b); /* the struct is the caller's again at once */
	kds_resource_set_release(&s1);
	kds_resource_set_release(&s2);

	/* Waited for (an async request queued behind a holder), terminated, then granted on
	 * its worker once the holder releases. */
	struct kds_resource d;
	struct kds_resource *ld = &d;
	struct kds_callback deferred;
	kds_resource_init(&d);
	event_init(&granted);
	CHECK(kds_callback_init(&deferred, 0, on_grant) == 0);
	held = kds_waitall(1, &excl, &ld, 0);
	CHECK(held && !KDS_IS_ERR(held));
	CHECK(kds_async_waitall(&waiting, KDS_FLAG_LOCKED_WAIT, &deferred, NULL, NULL, 1, &excl,
				&ld) == 0);
	CHECK(kds_resource_term(&d) == -EBUSY); /* waited for */
	CHECK(event_count(&granted) == 0);
	kds_resource_set_release(&held);
	event_wait(&granted, 1);
	kds_callback_term(&deferred);
	event_destroy(&granted);

	/* Racing: a release on one thread, the term on another. */
	struct kds_resource *res = malloc(sizeof *res);
	CHECK(res != NULL);
	struct race r = { res, NULL, 0, 0 };
	pthread_t t;
	CHECK(pthread_create(&t, NULL, releaser, &r) == 0);
	for (int i = 1; i <= RACES; i++) {
		kds_resource_init(res);
		struct kds_resource_set *s = kds_waitall(1, i % 3 ? &excl : &shared, &res, 0);
		CHECK(s && !KDS_IS_ERR(s));
		r.set = s;
		__atomic_store_n(&r.round, i, __ATOMIC_RELEASE);
		int rc = kds_resource_term(res); /* while the other thread releases */
		CHECK(rc == 0 || rc == -EBUSY);
		while (__atomic_load_n(&r.released, __ATOMIC_ACQUIRE) != i)
			sched_yield();
	}
	CHECK(pthread_join(t, NULL) == 0);
	CHECK(kds_resource_term(res) == -EINVAL); /* already terminated: refused */
	free(res);

	/* Free when terminated: 0. */
	struct kds_resource c;
	kds_resource_init(&c);
	CHECK(kds_resource_term(&c) == 0);
	printf("term_in_use: ok\n");
	return 0;
}
