/* The dma-buf hook's sequence (2013 form): the exporter embeds a struct kds_resource in each
 * buffer, initializes it at export, and its release path calls kds_resource_term, ignores the
 * answer, and frees the buffer at once, while importers may still hold the buffer or wait for
 * it. Here: 1,000 buffers, each free, held, held shared by two, or held and waited for by an
 * async (direct or deferred) request when its exporter releases it; the buffer memory is
 * scribbled over and freed at once; then the importers finish, in a shuffled order. Each
 * waiter still gets its grant after the buffer is gone, and each resource is freed by its
 * last release (LeakSanitizer and valgrind fail the run otherwise, .ci/capi.sh). */
#define KDS_API_VERSION 2013
#include "common.h"

#define BUFFERS 1000

struct dma_buf {
	char name[32];
	struct kds_resource kds;
	unsigned char pixels[64];
};

static struct dma_buf *dma_buf_export(int i)
{
	struct dma_buf *b = malloc(sizeof *b);
	CHECK(b != NULL);
	snprintf(b->name, sizeof b->name, "buf%d", i);
	kds_resource_init(&b->kds);
	return b;
}

/* The exporter's release: as the hook does, whatever the answer. */
static int dma_buf_release(struct dma_buf *b)
{
	int rc = kds_resource_term(&b->kds);
	memset(b, 0xdb, sizeof *b);
	free(b);
	return rc;
}

static int grants;
static void granted_cb(void *p1, void *p2)
{
	(void)p1;
	(void)p2;
	__atomic_add_fetch(&grants, 1, __ATOMIC_SEQ_CST);
}

int main(void)
{
	struct kds_callback direct, deferred;
	CHECK(kds_callback_init(&direct, 1, granted_cb) == 0);
	CHECK(kds_callback_init(&deferred, 0, granted_cb) == 0);
	struct kds_resource_set **sets = calloc(3 * BUFFERS, sizeof *sets);
	CHECK(sets != NULL);
	unsigned long excl = 1, shared = 0;
	int expect_busy = 0, busy = 0, waiters = 0;

	for (int i = 0; i < BUFFERS; i++) {
		struct dma_buf *b = dma_buf_export(i);
		struct kds_resource *l = &b->kds;
		switch (i % 5) {
		case 0: /* nobody uses it */
			break;
		case 1: /* an importer holds it */
			sets[3 * i] = kds_waitall(1, &excl, &l, 0);
			break;
		case 2: /* two importers read it */
			sets[3 * i] = kds_waitall(1, &shared, &l, 0);
			sets[3 * i + 1] = kds_waitall(1, &shared, &l, 0);
			break;
		case 3: /* held, and a direct request waits for it */
		case 4: /* held, and a deferred request waits for it */
			sets[3 * i] = kds_waitall(1, &shared, &l, 0);
			CHECK(kds_async_waitall(&sets[3 * i + 1], i % 5 == 3 ? &direct : &deferred, NULL,
						NULL, 1, &excl, &l) == 0);
			waiters++;
			break;
		}
		for (int k = 0; k < 2; k++)
			CHECK(!KDS_IS_ERR(sets[3 * i + k]));
		expect_busy += i % 5 != 0;
		int rc = dma_buf_release(b); /* the struct is gone from here on */
		CHECK(rc == (i % 5 ? -EBUSY : 0));
		busy += rc == -EBUSY;
	}
	CHECK(busy == expect_busy && grants == 0);
	/* The importers finish in a shuffled order: the holders release, which grants the
	 * waiters (a direct callback runs in the release; a deferred one on the worker). */
	for (int j = 0; j < BUFFERS; j++) {
		int i = (int)((j * 7919L) % BUFFERS);
		kds_resource_set_release(&sets[3 * i]);
		if (i % 5 == 2)
			kds_resource_set_release(&sets[3 * i + 1]);
	}
	kds_callback_term(&deferred); /* every deferred grant has run */
	CHECK(grants == waiters);
	for (int j = 0; j < BUFFERS; j++) {
		int i = (int)((j * 7919L) % BUFFERS);
		if (i % 5 >= 3)
			kds_resource_set_release_sync(&sets[3 * i + 1]);
	}
	for (int i = 0; i < 3 * BUFFERS; i++)
		CHECK(sets[i] == NULL);
	free(sets);
	kds_callback_term(&direct);
	printf("dmabuf_hook: %d buffers, %d terminated in use, %d waiters granted after the "
	       "buffer was freed: ok\n",
	       BUFFERS, busy, waiters);
	return 0;
}
