/* The seed's "kbase/base implementation" scenario: EGL renders into a render target it takes
 * exclusively while reading input buffers it takes shared. Written against the seed's API
 * only (plus the helpers in common.h, which use kds_waitall). */
#include "common.h"

static void direct_cb(void *ran, void *unused)
{
	(void)unused;
	*(int *)ran += 1;
}

static void deferred_cb(void *ev, void *ran)
{
	__atomic_add_fetch((int *)ran, 1, __ATOMIC_SEQ_CST);
	event_signal(ev);
}

int main(void)
{
	struct kds_resource target, target2, tex_a, tex_b;
	struct kds_callback direct, deferred;
	struct event deferred_ran;

	event_init(&deferred_ran);
	kds_resource_init(&target);
	kds_resource_init(&target2);
	kds_resource_init(&tex_a);
	kds_resource_init(&tex_b);
	CHECK(kds_callback_init(&direct, 1, direct_cb) == 0);
	CHECK(kds_callback_init(&deferred, 0, deferred_cb) == 0);

	/* Job 1 renders into target (bit 0: exclusive) reading A and B (shared). */
	struct kds_resource *job1_res[3] = { &target, &tex_a, &tex_b };
	unsigned long job1_excl = 1ul << 0;
	struct kds_resource_set *job1 = NULL;
	int ran1 = 0;
	CHECK(kds_async_waitall(&job1, KDS_FLAG_LOCKED_WAIT, &direct, &ran1, NULL, 3, &job1_excl,
				job1_res) == 0);
	CHECK(job1 != NULL);
	CHECK(ran1 == 1); /* everything free: the direct callback ran inside the call */
	CHECK(is_shareable(&tex_a));
	CHECK(is_shareable(&tex_b));
	CHECK(!is_shareable(&target));
	CHECK(!is_free(&tex_a));

	/* Job 2 (deferred callback) renders into target2 (bit 1) reading A: granted at once. */
	struct kds_resource *job2_res[2] = { &tex_a, &target2 };
	unsigned long job2_excl = 1ul << 1;
	struct kds_resource_set *job2 = NULL;
	int ran2 = 0;
	CHECK(kds_async_waitall(&job2, KDS_FLAG_LOCKED_WAIT, &deferred, &deferred_ran, &ran2, 2,
				&job2_excl, job2_res) == 0);
	event_wait(&deferred_ran, 1);
	CHECK(__atomic_load_n(&ran2, __ATOMIC_SEQ_CST) == 1);
	CHECK(!is_shareable(&target2));

	/* Job 3 renders into target again: waits for job 1. */
	struct kds_resource *job3_res[2] = { &target, &tex_b };
	unsigned long job3_excl = 1ul << 0;
	struct kds_resource_set *job3 = NULL;
	int ran3 = 0;
	CHECK(kds_async_waitall(&job3, KDS_FLAG_LOCKED_WAIT, &direct, &ran3, NULL, 2, &job3_excl,
				job3_res) == 0);
	CHECK(ran3 == 0);

	/* A texture upload writes A: waits for both readers. */
	struct kds_resource *up_res[1] = { &tex_a };
	unsigned long up_excl = 1;
	struct kds_resource_set *upload = NULL;
	int ran4 = 0;
	CHECK(kds_async_waitall(&upload, KDS_FLAG_LOCKED_WAIT, &direct, &ran4, NULL, 1, &up_excl,
				up_res) == 0);
	CHECK(ran4 == 0);

	/* A reader of A that comes after the upload does not overtake it (FIFO). */
	unsigned long rd_excl = 0;
	struct kds_resource_set *reader = NULL;
	int ran5 = 0;
	CHECK(kds_async_waitall(&reader, KDS_FLAG_LOCKED_WAIT, &direct, &ran5, NULL, 1, &rd_excl,
				up_res) == 0);
	CHECK(ran5 == 0);

	kds_resource_set_release(&job1);
	CHECK(job1 == NULL);
	CHECK(ran3 == 1); /* job 3's direct callback ran inside the release */
	CHECK(ran4 == 0); /* job 2 still reads A */
	kds_resource_set_release(&job2);
	CHECK(job2 == NULL);
	CHECK(ran4 == 1);
	CHECK(ran5 == 0);
	kds_resource_set_release(&upload);
	CHECK(ran5 == 1);
	kds_resource_set_release(&job3);
	kds_resource_set_release(&reader);
	CHECK(job3 == NULL && reader == NULL && upload == NULL);

	CHECK(is_free(&target) && is_free(&target2) && is_free(&tex_a) && is_free(&tex_b));
	CHECK(ran1 == 1 && ran3 == 1 && ran4 == 1 && ran5 == 1 && ran2 == 1);

	kds_callback_term(&direct);
	kds_callback_term(&deferred);
	kds_resource_term(&target);
	kds_resource_term(&target2);
	kds_resource_term(&tex_a);
	kds_resource_term(&tex_b);
	event_destroy(&deferred_ran);
	printf("egl_render_target: ok\n");
	return 0;
}
