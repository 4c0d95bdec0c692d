/* tests/c/forms: the functions driver_2013.c (2013 form) offers main_2012.c (2012 form). */
#ifndef KDS_TEST_FORMS_H
#define KDS_TEST_FORMS_H
#include <stddef.h>
struct kds_resource;
struct kds_resource_set;
size_t driver_callback_size(void);
/* A 7-argument kds_async_waitall with a direct callback that adds 1 to *counter. */
int driver_request(struct kds_resource *res, int exclusive, int *counter,
		   struct kds_resource_set **out);
void driver_release(struct kds_resource_set **s);
int driver_term(struct kds_resource *res);
int driver_calls(void);
#endif
