/* Both header forms in one program, one libkds: this file uses the 2012 form (8-argument
 * kds_async_waitall with flags), driver_2013.c the 2013 form (7 arguments); they share
 * resources and sets. Built and run by capi/tests/c_suite.rs (both_forms_in_one_program) and
 * by .ci/capi.sh under ASan and valgrind. */
#include "common.h"

#include "forms.h"

#if KDS_API_VERSION != 2012
#error "the default form is 2012"
#endif

static void count_cb(void *p1, void *p2)
{
	(void)p2;
	*(int *)p1 += 1;
}

int main(void)
{
	struct kds_resource r;
	struct kds_resource *list[1] = { &r };
	unsigned long excl = 1;
	int counter = 0;
	kds_resource_init(&r);
	CHECK(driver_callback_size() == sizeof(struct kds_callback));

	/* The 2013 driver's request, granted at once; its set released by this file. */
	struct kds_resource_set *s = NULL;
	CHECK(driver_request(&r, 1, &counter, &s) == 0);
	CHECK(counter == 1 && s != NULL && !is_free(&r));
	kds_resource_set_release(&s);
	CHECK(is_free(&r));

	/* This file holds r (2012 form, LOCKED_WAIT); the driver's request queues behind it. */
	struct kds_callback cb;
	CHECK(kds_callback_init(&cb, 1, count_cb) == 0);
	struct kds_resource_set *mine = NULL;
	CHECK(kds_async_waitall(&mine, KDS_FLAG_LOCKED_WAIT, &cb, &counter, NULL, 1, &excl, list) ==
	      0);
	CHECK(counter == 2 && mine != NULL);
	s = NULL;
	CHECK(driver_request(&r, 0, &counter, &s) == 0);
	CHECK(counter == 2 && s != NULL); /* pending */
	kds_resource_set_release(&mine); /* grants the driver's set: its callback runs here */
	CHECK(counter == 3 && driver_calls() == 2);
	driver_release(&s);
	CHECK(s == NULL && is_free(&r));

	/* The 2012 form's flags still mean what they did: a sync holder makes Fail refuse. */
	struct kds_resource_set *sync = kds_waitall(1, &excl, list, 0);
	CHECK(sync && !KDS_IS_ERR(sync));
	CHECK(kds_async_waitall(&mine, KDS_FLAG_LOCKED_FAIL, &cb, &counter, NULL, 1, &excl, list) ==
	      -EBUSY);
	/* ... while the 2013 form waits in line. */
	s = NULL;
	CHECK(driver_request(&r, 1, &counter, &s) == 0);
	CHECK(counter == 3 && s != NULL);
	CHECK(driver_term(&r) == -EBUSY); /* held and waited for */
	kds_resource_set_release(&sync);
	CHECK(counter == 4);
	driver_release(&s);
	kds_callback_term(&cb);
	printf("forms: ok\n");
	return 0;
}
