#include <wref.h>
#include <stdio.h>

struct conn { int fd; };
static void conn_close(void *o) { printf("closing fd %d\n", ((struct conn *)o)->fd); }
static const wref_type conn_type = { .name = "conn", .destroy = conn_close };
static void gone(wref_ref *r, void *arg) { printf("%s died\n", (char *)arg); }

int main(void)
{
	struct conn *c = wref_new(&conn_type, sizeof *c);   /* strong = 1 */
	c->fd = 7;
	wref_ref *w = wref_ref_new(c, gone, "conn 7");       /* weak, with callback */
	struct conn *p = wref_ref_get(w);                    /* upgrade: strong ref */
	if (p) { printf("fd %d\n", p->fd); wref_release(p); }
	wref_release(c);                 /* last strong ref: destroy runs here */
	wref_flush();                    /* callbacks run after destroy: wait */
	printf("after: %p\n", wref_ref_get(w));              /* NULL, forever */
	wref_release(w);
	return 0;
}
