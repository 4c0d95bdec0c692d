/* Bad input gets an error, never a crash or a hang: NULL pointers (-EFAULT), bad counts and
 * flags, zero-filled and terminated objects (-EINVAL); an empty set is granted at once; a
 * resource named twice is taken once, exclusive winning. Calls every exported function. */
#include "common.h"

static void ran_cb(void *ran, void *unused)
{
	(void)unused;
	*(int *)ran += 1;
}

int main(void)
{
	struct kds_resource r, zeroed, dead;
	struct kds_callback cb, zero_cb, dead_cb;
	struct kds_resource_set *p = NULL;
	unsigned long excl = 1, shared = 0;
	int ran = 0;

	memset(&zeroed, 0, sizeof zeroed);
	memset(&zero_cb, 0, sizeof zero_cb);
	kds_resource_init(&r);
	kds_resource_init(&dead);
	CHECK(kds_resource_term(&dead) == 0);
	CHECK(kds_resource_term(&dead) == -EINVAL); /* twice: refused, nothing done */
	struct kds_resource *list[1] = { &r };
	struct kds_resource *null_entry[1] = { NULL };
	struct kds_resource *zero_entry[1] = { &zeroed };
	struct kds_resource *dead_entry[1] = { &dead };

	/* Callback objects. */
	CHECK(kds_callback_init(NULL, 1, ran_cb) == -EFAULT);
	CHECK(kds_callback_init(&cb, 1, NULL) == -EINVAL);
	CHECK(kds_callback_init(&cb, 1, ran_cb) == 0);
	CHECK(kds_callback_init(&dead_cb, 0, ran_cb) == 0);
	kds_callback_term(&dead_cb);
	kds_callback_term(&dead_cb); /* twice: ignored */
	kds_callback_term(NULL);
	kds_callback_term(&zero_cb);
	kds_resource_init(NULL);
	CHECK(kds_resource_term(NULL) == -EFAULT);
	CHECK(kds_resource_term(&zeroed) == -EINVAL);

	/* kds_waitall. */
	struct kds_resource_set *s;
	s = kds_waitall(-1, &excl, list, 0);
	CHECK(KDS_IS_ERR(s) && KDS_PTR_ERR(s) == -EINVAL);
	s = kds_waitall(70000, &excl, list, 0); /* more than the 65536 a set may name */
	CHECK(KDS_IS_ERR(s) && KDS_PTR_ERR(s) == -EINVAL);
	s = kds_waitall(1, NULL, list, 0);
	CHECK(KDS_IS_ERR(s) && KDS_PTR_ERR(s) == -EFAULT);
	s = kds_waitall(1, &excl, NULL, 0);
	CHECK(KDS_IS_ERR(s) && KDS_PTR_ERR(s) == -EFAULT);
	s = kds_waitall(1, &excl, null_entry, 0);
	CHECK(KDS_IS_ERR(s) && KDS_PTR_ERR(s) == -EFAULT);
	s = kds_waitall(1, &excl, zero_entry, 0);
	CHECK(KDS_IS_ERR(s) && KDS_PTR_ERR(s) == -EINVAL);
	s = kds_waitall(1, &excl, dead_entry, KDS_WAIT_BLOCKING);
	CHECK(KDS_IS_ERR(s) && KDS_PTR_ERR(s) == -EINVAL);

	/* Empty set: granted at once, a real set to release (NULL arrays are fine then). */
	s = kds_waitall(0, NULL, NULL, KDS_WAIT_BLOCKING);
	CHECK(s != NULL && !KDS_IS_ERR(s));
	kds_resource_set_release(&s);
	CHECK(s == NULL);
	CHECK(kds_async_waitall(&p, KDS_FLAG_LOCKED_WAIT, &cb, &ran, NULL, 0, NULL, NULL) == 0);
	CHECK(ran == 1 && p != NULL);
	kds_resource_set_release(&p);
	CHECK(p == NULL);

	/* A resource named twice, shared and exclusive: one exclusive link, no self-deadlock. */
	struct kds_resource *twice[2] = { &r, &r };
	unsigned long second_excl = 2;
	s = kds_waitall(2, &second_excl, twice, 1000);
	CHECK(s != NULL && !KDS_IS_ERR(s));
	CHECK(!is_shareable(&r)); /* exclusive won */
	kds_resource_set_release(&s);
	s = kds_waitall(2, &shared, twice, 1000); /* twice shared: shared */
	CHECK(s != NULL && !KDS_IS_ERR(s));
	CHECK(is_shareable(&r) && !is_free(&r));
	kds_resource_set_release(&s);

	/* kds_async_waitall: errors leave *pprset alone and queue nothing. */
	CHECK(kds_async_waitall(NULL, KDS_FLAG_LOCKED_WAIT, &cb, &ran, NULL, 1, &excl, list) ==
	      -EFAULT);
	CHECK(kds_async_waitall(&p, KDS_FLAG_LOCKED_WAIT, NULL, &ran, NULL, 1, &excl, list) ==
	      -EFAULT);
	CHECK(kds_async_waitall(&p, KDS_FLAG_LOCKED_WAIT, &zero_cb, &ran, NULL, 1, &excl, list) ==
	      -EINVAL);
	CHECK(kds_async_waitall(&p, KDS_FLAG_LOCKED_WAIT, &dead_cb, &ran, NULL, 1, &excl, list) ==
	      -EINVAL);
	CHECK(kds_async_waitall(&p, KDS_FLAG_LOCKED_WAIT, &cb, &ran, NULL, -3, &excl, list) ==
	      -EINVAL);
	CHECK(kds_async_waitall(&p, KDS_FLAG_LOCKED_WAIT, &cb, &ran, NULL, 1, NULL, list) ==
	      -EFAULT);
	CHECK(kds_async_waitall(&p, KDS_FLAG_LOCKED_WAIT, &cb, &ran, NULL, 1, &excl, NULL) ==
	      -EFAULT);
	CHECK(kds_async_waitall(&p, KDS_FLAG_LOCKED_WAIT, &cb, &ran, NULL, 1, &excl,
				null_entry) == -EFAULT);
	CHECK(kds_async_waitall(&p, KDS_FLAG_LOCKED_WAIT, &cb, &ran, NULL, 1, &excl,
				zero_entry) == -EINVAL);
	CHECK(kds_async_waitall(&p, 0x100, &cb, &ran, NULL, 1, &excl, list) == -EINVAL);
	struct kds_resource_set *sentinel = (struct kds_resource_set *)KDS_ERR_PTR(-EINVAL);
	p = sentinel;
	struct kds_resource_set *sync = kds_waitall(1, &excl, list, 0);
	CHECK(sync && !KDS_IS_ERR(sync));
	CHECK(kds_async_waitall(&p, KDS_FLAG_LOCKED_FAIL, &cb, &ran, NULL, 1, &excl, list) ==
	      -EBUSY);
	CHECK(p == sentinel); /* unchanged on error */
	kds_resource_set_release(&sync);
	CHECK(ran == 1);
	CHECK(is_free(&r));

	/* kds_resource_set_release: NULL, NULL inside, error pointers inside. */
	kds_resource_set_release(NULL);
	p = NULL;
	kds_resource_set_release(&p);
	CHECK(p == NULL);
	p = sentinel;
	kds_resource_set_release(&p);
	CHECK(p == NULL);

	/* Terminating a resource while a set holds it is safe; the set still releases. */
	struct kds_resource tmp;
	struct kds_resource *tmp_list[1] = { &tmp };
	kds_resource_init(&tmp);
	s = kds_waitall(1, &excl, tmp_list, 0);
	CHECK(s && !KDS_IS_ERR(s));
	CHECK(kds_resource_term(&tmp) == -EBUSY); /* terminated, freed by the release */
	CHECK(kds_waitall(1, &excl, tmp_list, 0) == KDS_ERR_PTR(-EINVAL));
	kds_resource_set_release(&s);
	CHECK(s == NULL);

	/* The interrupt extension, with NULL. */
	kds_interrupt_raise(NULL);
	kds_interrupt_clear(NULL);
	kds_interrupt_put(NULL);
	struct kds_interrupt *i = kds_interrupt_get();
	CHECK(i != NULL);
	kds_interrupt_put(i);

	/* Header facts. */
	CHECK(KDS_FLAG_LOCKED_FAIL == 0);
	CHECK(KDS_FLAG_LOCKED_IGNORE == 1 && KDS_FLAG_LOCKED_WAIT == 2);
	CHECK(KDS_FLAG_LOCKED_ACTION == 3);
	CHECK(KDS_WAIT_BLOCKING == ULONG_MAX);
	CHECK(sizeof(struct kds_resource) == KDS_RESOURCE_PRIVATE_WORDS * sizeof(void *));
	CHECK(sizeof(struct kds_callback) == 4 * sizeof(void *));
	/* The kernel's readable fields: as kds_callback_init was given them. */
	CHECK(cb.user_cb == ran_cb && cb.direct == 1);
	struct kds_callback odd;
	CHECK(kds_callback_init(&odd, 7, ran_cb) == 0);
	CHECK(odd.user_cb == ran_cb && odd.direct == 7); /* nonzero: direct, kept as given */
	CHECK(kds_async_waitall(&p, KDS_FLAG_LOCKED_WAIT, &odd, &ran, NULL, 1, &excl, list) == 0);
	CHECK(ran == 2 && p != NULL); /* ran inside the call: direct */
	kds_resource_set_release_sync(&p);
	CHECK(p == NULL);
	kds_resource_set_release_sync(&p); /* NULL: nothing */
	kds_resource_set_release_sync(NULL);
	p = KDS_ERR_PTR(-EINVAL);
	kds_resource_set_release_sync(&p); /* an error pointer: ignored, cleared */
	CHECK(p == NULL);
	kds_callback_term(&odd);
	CHECK(!KDS_IS_ERR(NULL) && !KDS_IS_ERR(&r));

	kds_callback_term(&cb);
	CHECK(kds_resource_term(&r) == 0);
	printf("bad_input: ok\n");
	return 0;
}
