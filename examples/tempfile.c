/*
 * tempfile.c - resource cleanup with wref_finalize (Python's
 * weakref.finalize, the TempDir recipe).
 *
 * A handler object owns a temporary file.  A finalizer removes the file
 * when the handler dies -- or earlier, when the program asks for it with
 * wref_finalizer_call(), or at exit for a handler that is still alive
 * (WREF_FIN_ATEXIT).  Whichever comes first wins; the file is removed
 * exactly once.  wref_finalizer_detach() keeps the file instead.
 *
 * The finalizer's argument must not be the handler itself (it is gone by
 * the time a death-time finalizer runs): it is a separate copy of the
 * path.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <wref.h>

/* what the finalizer needs, owned by the finalizer */
struct cleanup {
	char label[16];
	char path[64];
};

static void remove_file(void *arg)
{
	struct cleanup *c = arg;
	if (unlink(c->path) == 0)
		printf("  [cleanup] removed %s's file\n", c->label);
	free(c);
}

struct handler {
	char label[16];
	char path[64];
	wref_finalizer *fin; /* our handle; the finalizer holds nothing of us */
};

static void handler_destroy(void *obj)
{
	struct handler *h = obj;
	wref_release(h->fin); /* the finalizer stays armed on its own */
}

static const wref_type handler_type = { .name = "handler",
					.destroy = handler_destroy };

static struct handler *handler_new(const char *label)
{
	struct handler *h = wref_new(&handler_type, sizeof *h);
	struct cleanup *c = malloc(sizeof *c);
	if (!h || !c)
		goto fail;
	snprintf(h->label, sizeof h->label, "%s", label);
	snprintf(h->path, sizeof h->path, "/tmp/wref-example-XXXXXX");
	int fd = mkstemp(h->path);
	if (fd < 0)
		goto fail;
	dprintf(fd, "scratch data of %s\n", label);
	close(fd);
	memcpy(c->label, h->label, sizeof c->label);
	memcpy(c->path, h->path, sizeof c->path);
	/* armed at death and at exit */
	h->fin = wref_finalize(h, remove_file, c, WREF_FIN_ATEXIT);
	if (!h->fin) {
		unlink(h->path);
		goto fail;
	}
	return h;
fail:
	free(c);
	wref_release(h);
	return NULL;
}

/* the explicit, early cleanup: true the first time only */
static bool handler_remove(struct handler *h)
{
	return wref_finalizer_call(h->fin);
}

static bool file_exists(const char *path)
{
	return access(path, F_OK) == 0;
}

/* a handler the program never releases (a global, so that leak checkers
 * see it reachable at exit) */
struct handler *still_open;

int main(void)
{
	char path[64];

	printf("1. the handler dies:\n");
	struct handler *a = handler_new("a");
	snprintf(path, sizeof path, "%s", a->path);
	wref_release(a);
	wref_flush(); /* the finalizer runs on the executor */
	printf("  file exists: %s\n", file_exists(path) ? "yes" : "no");

	printf("2. removed explicitly, then the handler dies:\n");
	struct handler *b = handler_new("b");
	snprintf(path, sizeof path, "%s", b->path);
	printf("  remove: %s\n", handler_remove(b) ? "done" : "nothing");
	printf("  remove again: %s\n", handler_remove(b) ? "done" : "nothing");
	printf("  removed: %s\n", wref_finalizer_alive(b->fin) ? "no" : "yes");
	wref_release(b); /* nothing left to do */
	wref_flush();

	printf("3. detached: the file is kept\n");
	struct handler *c = handler_new("c");
	void *arg;
	if (wref_finalizer_detach(c->fin, &arg)) {
		struct cleanup *cl = arg; /* ours again */
		snprintf(path, sizeof path, "%s", cl->path);
		free(cl);
	}
	wref_release(c);
	wref_flush();
	printf("  file exists after the handler died: %s\n",
	       file_exists(path) ? "yes" : "no");
	unlink(path);

	printf("4. still alive at exit:\n");
	still_open = handler_new("d"); /* never released: exit removes it */
	printf("  returning from main\n");
	return 0;
}
