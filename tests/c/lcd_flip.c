/* The seed's "Buffer publish/vsync" scenario: double buffering between a GPU and an LCD
 * controller. Each frame the GPU renders into the back buffer (an async exclusive request,
 * released when the render "atom" completes); right after queueing it, the LCD driver asks to
 * pan to that buffer (an async shared request queued behind the GPU's), and its callback
 * loads the buffer into the scan-out DMA and, at that vsync, releases the previous on-screen
 * buffer: for a short while the LCD holds both. The GPU can never render into the buffer on
 * screen, the LCD never shows a buffer before its render completed, and flips happen in
 * frame order. Both drivers use deferred callbacks (their own worker threads). */
#include "common.h"

#define FRAMES 400

static struct kds_resource buf[2];
static struct kds_callback gpu_cb, lcd_cb;
static struct kds_resource_set *gpu_set[FRAMES];
static struct kds_resource_set *lcd_set[FRAMES];
static int content[2];  /* frame last rendered into each buffer */
static int scanning[2]; /* buffer is being scanned out */
static int flips;       /* flips done (== next frame to flip) */
static struct event flipped;

static void render_done(void *frame, void *unused)
{
	(void)unused;
	int f = (int)(intptr_t)frame, b = f % 2;
	CHECK(__atomic_load_n(&scanning[b], __ATOMIC_SEQ_CST) == 0); /* never render on screen */
	__atomic_store_n(&content[b], f, __ATOMIC_SEQ_CST);
	if (f % 7 == 0)
		usleep(200); /* a slow render now and then */
	kds_resource_set_release(&gpu_set[f]); /* the atom completes */
}

static void pan(void *frame, void *unused)
{
	(void)unused;
	int f = (int)(intptr_t)frame, b = f % 2;
	CHECK(__atomic_load_n(&flips, __ATOMIC_SEQ_CST) == f);      /* in frame order */
	CHECK(__atomic_load_n(&content[b], __ATOMIC_SEQ_CST) == f); /* rendered, not yet overwritten */
	__atomic_store_n(&scanning[b], 1, __ATOMIC_SEQ_CST);        /* load into the DMA unit */
	if (f > 0) {
		int prev = (f - 1) % 2;
		/* For a moment the LCD holds both buffers: nobody can write the old one yet. */
		CHECK(__atomic_load_n(&scanning[prev], __ATOMIC_SEQ_CST) == 1);
		CHECK(!is_free(&buf[prev]));
		__atomic_store_n(&scanning[prev], 0, __ATOMIC_SEQ_CST); /* vsync: DMA moved on */
		kds_resource_set_release(&lcd_set[f - 1]);
	}
	__atomic_store_n(&flips, f + 1, __ATOMIC_SEQ_CST);
	event_signal(&flipped);
}

int main(void)
{
	event_init(&flipped);
	kds_resource_init(&buf[0]);
	kds_resource_init(&buf[1]);
	CHECK(kds_callback_init(&gpu_cb, 0, render_done) == 0);
	CHECK(kds_callback_init(&lcd_cb, 0, pan) == 0);

	for (int f = 0; f < FRAMES; f++) {
		struct kds_resource *target = &buf[f % 2];
		unsigned long excl = 1, shared = 0;
		/* Keep at most one frame ahead of the screen, as EGL's swap interval would: frame
		 * f may be queued once frame f - 2 is on screen, while frame f - 2's buffer (the
		 * target of f) is still being scanned out. */
		if (f >= 2)
			event_wait(&flipped, f - 1);
		CHECK(kds_async_waitall(&gpu_set[f], KDS_FLAG_LOCKED_WAIT, &gpu_cb,
					(void *)(intptr_t)f, NULL, 1, &excl, &target) == 0);
		CHECK(kds_async_waitall(&lcd_set[f], KDS_FLAG_LOCKED_WAIT, &lcd_cb,
					(void *)(intptr_t)f, NULL, 1, &shared, &target) == 0);
	}
	event_wait(&flipped, FRAMES);
	CHECK(__atomic_load_n(&flips, __ATOMIC_SEQ_CST) == FRAMES);
	kds_callback_term(&gpu_cb);
	kds_callback_term(&lcd_cb);
	for (int f = 0; f < FRAMES; f++) {
		CHECK(gpu_set[f] == NULL);
		CHECK(f == FRAMES - 1 || lcd_set[f] == NULL);
	}
	CHECK(!is_free(&buf[(FRAMES - 1) % 2])); /* the last frame is still on screen */
	kds_resource_set_release(&lcd_set[FRAMES - 1]);
	CHECK(is_free(&buf[0]) && is_free(&buf[1]));
	kds_resource_term(&buf[0]);
	kds_resource_term(&buf[1]);
	event_destroy(&flipped);
	printf("lcd_flip: %d frames ok\n", FRAMES);
	return 0;
}
