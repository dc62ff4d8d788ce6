/*
 * widgets.c - attaching metadata to objects that know nothing about it,
 * with a weak-key map (Python: WeakKeyDictionary).
 *
 * A UI toolkit owns its widgets; an analytics module wants a tooltip and
 * a click counter per widget without touching the widget struct and
 * without keeping widgets alive.  It keeps a wref_keymap from widget to
 * metadata: the map holds the widget weakly and the metadata strongly.
 * When the toolkit destroys a widget the entry disappears at once, and its
 * metadata is released on the executor (wref_flush() waits for that).
 *
 * A worker thread records clicks while the main thread owns the widgets.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <wref.h>

/* the toolkit's object: no field for anyone's metadata */
struct widget {
	char name[16];
};

static const wref_type widget_type = { .name = "widget" };

static struct widget *widget_new(const char *name)
{
	struct widget *w = wref_new(&widget_type, sizeof *w);
	if (w)
		snprintf(w->name, sizeof w->name, "%s", name);
	return w;
}

/* the analytics module's metadata */
struct meta {
	char tooltip[32];
	atomic_long clicks;
};

/* destroy runs on the executor thread, concurrently with main: it leaves
 * a note that main prints after wref_flush() */
static pthread_mutex_t notes_mu = PTHREAD_MUTEX_INITIALIZER;
static char notes[256];

static void meta_destroy(void *obj)
{
	struct meta *m = obj;
	pthread_mutex_lock(&notes_mu);
	size_t n = strlen(notes);
	snprintf(notes + n, sizeof notes - n,
		 "  metadata \"%s\" freed after %ld click(s)\n", m->tooltip,
		 atomic_load(&m->clicks));
	pthread_mutex_unlock(&notes_mu);
}

static void flush_and_print_notes(void)
{
	wref_flush(); /* metadata is released on the executor */
	pthread_mutex_lock(&notes_mu);
	fputs(notes, stdout);
	notes[0] = '\0';
	pthread_mutex_unlock(&notes_mu);
}

static const wref_type meta_type = { .name = "meta",
				     .destroy = meta_destroy };

static wref_keymap *meta_of; /* widget -> struct meta */

static void annotate(struct widget *w, const char *tooltip)
{
	struct meta *m = wref_new(&meta_type, sizeof *m);
	snprintf(m->tooltip, sizeof m->tooltip, "%s", tooltip);
	wref_keymap_set(meta_of, w, m); /* the map takes its own ref */
	wref_release(m);
}

static void record_click(struct widget *w)
{
	struct meta *m = wref_keymap_get(meta_of, w); /* pinned, or NULL */
	if (!m)
		return; /* not annotated */
	atomic_fetch_add(&m->clicks, 1);
	wref_release(m);
}

struct clicks {
	struct widget *w;
	int n;
};

static void *clicker(void *arg)
{
	struct clicks *c = arg;
	for (int i = 0; i < c->n; i++)
		record_click(c->w);
	return NULL;
}

static int print_one(void *key, void *value, void *arg)
{
	(void)arg;
	printf("  %s: \"%s\"\n", ((struct widget *)key)->name,
	       ((struct meta *)value)->tooltip);
	return 0;
}

int main(void)
{
	meta_of = wref_keymap_new(NULL);
	struct widget *save = widget_new("save");
	struct widget *quit = widget_new("quit");
	struct widget *logo = widget_new("logo"); /* never annotated */
	annotate(save, "Save the document");
	annotate(quit, "Leave the program");

	struct clicks c[2] = { { save, 1000 }, { quit, 10 } };
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, clicker, &c[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	record_click(logo);

	printf("annotated widgets: %zu\n", wref_keymap_len(meta_of));
	printf("the toolkit destroys \"quit\":\n");
	wref_release(quit);
	printf("  annotated widgets now: %zu\n", wref_keymap_len(meta_of));
	flush_and_print_notes();
	printf("what is left:\n");
	wref_keymap_foreach(meta_of, print_one, NULL);

	printf("the analytics module goes away first:\n");
	wref_release(meta_of);
	flush_and_print_notes();
	printf("the widgets are untouched: %s, %s\n", save->name, logo->name);
	wref_release(save);
	wref_release(logo);
	return 0;
}
