/* A display driver's page flip (2013 form), as the Exynos DRM driver used KDS (written here
 * from what the driver does): for each frame the renderer takes its buffer exclusively,
 * draws, and the flip ioctl asks for the buffer shared with a *direct* callback, into a set
 * pointer on its stack; it copies that pointer into the pending-flip FIFO and the stack slot
 * dies. The renderer's release grants the flip set and runs its callback (which marks the
 * flip ready). A vblank thread, holding the display's spinlock, retires the frame on screen
 * by releasing its set through the FIFO's copy of the pointer, and puts the ready one on
 * screen. So a plain release runs under a spinlock, from another thread than the request,
 * through another address than the one kds_async_waitall wrote.
 * Checks: frames reach the screen in order; no buffer is drawn into while on screen (its
 * contents stay the frame that was flipped); every set is released once; and a plain release
 * returns while another thread is inside a callback it is racing (it never waits for one). */
#define KDS_API_VERSION 2013
#include "common.h"

#include <sched.h>

#define FRAMES 600
#define NBUF 3

struct framebuffer {
	struct kds_resource kds;
	volatile int contents; /* the frame drawn into it */
};

struct flip {
	struct framebuffer *fb;
	int frame;
	struct kds_resource_set *rset; /* the FIFO's copy of the pointer */
	volatile int ready;	       /* set by the direct callback */
};

static struct framebuffer fbs[NBUF];
static struct flip fifo[FRAMES];
static pthread_spinlock_t display_lock;
static volatile int fifo_tail; /* flips queued */
static volatile int on_screen = -1;
static int shown, callbacks;
static volatile int done;

static void flip_cb(void *p1, void *p2)
{
	(void)p2;
	struct flip *f = p1;
	CHECK(f->fb->contents == f->frame); /* the GPU finished this frame */
	__atomic_add_fetch(&callbacks, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&f->ready, 1, __ATOMIC_RELEASE);
}

static void *vblank(void *p)
{
	(void)p;
	int next = 0;
	while (!done || next < FRAMES) {
		sleep_ms(1);
		pthread_spin_lock(&display_lock);
		if (next < fifo_tail && __atomic_load_n(&fifo[next].ready, __ATOMIC_ACQUIRE)) {
			struct flip *f = &fifo[next];
			CHECK(f->frame == next); /* in order */
			if (on_screen >= 0) {
				struct flip *old = &fifo[on_screen];
				CHECK(old->fb->contents == old->frame); /* not drawn into on screen */
				kds_resource_set_release(&old->rset);	/* under the spinlock */
				CHECK(old->rset == NULL);
			}
			on_screen = next++;
			shown++;
		}
		pthread_spin_unlock(&display_lock);
	}
	return NULL;
}

/* The flip ioctl: the set pointer lives on this stack frame only. */
static void page_flip(struct kds_callback *cb, int frame)
{
	struct framebuffer *fb = &fbs[frame % NBUF];
	struct kds_resource *list = &fb->kds;
	unsigned long shared = 0;
	struct kds_resource_set *rset = NULL;
	struct flip *f = &fifo[frame];
	f->fb = fb;
	f->frame = frame;
	CHECK(kds_async_waitall(&rset, cb, f, NULL, 1, &shared, &list) == 0);
	CHECK(rset != NULL);
	pthread_spin_lock(&display_lock);
	f->rset = rset; /* moved to the FIFO */
	fifo_tail = frame + 1;
	pthread_spin_unlock(&display_lock);
}

/* For the last check: a deferred callback that blocks until told. */
static struct event entered, leave;
static void blocking_cb(void *p1, void *p2)
{
	(void)p1;
	(void)p2;
	event_signal(&entered);
	event_wait(&leave, 1);
}

int main(void)
{
	struct kds_callback cb;
	CHECK(kds_callback_init(&cb, 1, flip_cb) == 0);
	CHECK(cb.direct == 1 && cb.user_cb == flip_cb); /* the driver reads them */
	pthread_spin_init(&display_lock, PTHREAD_PROCESS_PRIVATE);
	for (int i = 0; i < NBUF; i++) {
		kds_resource_init(&fbs[i].kds);
		fbs[i].contents = -1;
	}
	pthread_t t;
	CHECK(pthread_create(&t, NULL, vblank, NULL) == 0);
	unsigned long excl = 1;
	for (int frame = 0; frame < FRAMES; frame++) {
		struct framebuffer *fb = &fbs[frame % NBUF];
		struct kds_resource *list = &fb->kds;
		/* The GPU: waits for the display to let go of this buffer, then draws. */
		struct kds_resource_set *gpu = kds_waitall(1, &excl, &list, KDS_WAIT_BLOCKING);
		CHECK(gpu && !KDS_IS_ERR(gpu));
		page_flip(&cb, frame); /* queued behind the GPU's hold */
		fb->contents = frame;
		kds_resource_set_release(&gpu); /* grants the flip: its callback runs here */
		CHECK(__atomic_load_n(&fifo[frame].ready, __ATOMIC_ACQUIRE));
	}
	done = 1;
	CHECK(pthread_join(t, NULL) == 0);
	CHECK(shown == FRAMES && callbacks == FRAMES);
	kds_resource_set_release(&fifo[on_screen].rset); /* the last frame leaves the screen */
	for (int i = 0; i < FRAMES; i++)
		CHECK(fifo[i].rset == NULL);

	/* A plain release racing a callback that runs on another thread returns at once. */
	struct kds_callback deferred;
	event_init(&entered);
	event_init(&leave);
	CHECK(kds_callback_init(&deferred, 0, blocking_cb) == 0);
	struct kds_resource_set *s = NULL;
	struct kds_resource *list = &fbs[0].kds;
	CHECK(kds_async_waitall(&s, &deferred, NULL, NULL, 1, &excl, &list) == 0);
	event_wait(&entered, 1);
	pthread_spin_lock(&display_lock);
	kds_resource_set_release(&s); /* must not wait for blocking_cb */
	pthread_spin_unlock(&display_lock);
	CHECK(event_count(&leave) == 0 && is_free(&fbs[0].kds));
	event_signal(&leave);
	kds_callback_term(&deferred);
	kds_callback_term(&cb);
	for (int i = 0; i < NBUF; i++)
		CHECK(kds_resource_term(&fbs[i].kds) == 0);
	event_destroy(&entered);
	event_destroy(&leave);
	printf("page_flip: %d frames in order, none drawn into on screen: ok\n", FRAMES);
	return 0;
}
