/*
 * tree.c - a tree with weak parent pointers.
 *
 * Parents own their children (strong refs); a child points back at its
 * parent with a weak ref, so the tree has no reference cycle and releasing
 * the root frees it.  Code holding a child upgrades `parent` before using
 * it: while the parent lives it gets a pinned pointer, once it died it gets
 * NULL -- never a dangling pointer.  (Python: weakref.ref(parent) in a
 * node class.)
 *
 * Reader threads walk from a leaf up to the root while the main thread
 * releases the root: every upgrade either pins a live node or fails.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <wref.h>

#define MAX_KIDS 4

struct node {
	char name[16];
	wref_ref *parent;            /* weak: NULL for the root */
	struct node *kids[MAX_KIDS]; /* strong */
	int nkids;
	_Atomic int alive;           /* 1 until destroy: readers check it */
};

static void node_destroy(void *obj)
{
	struct node *n = obj;
	atomic_store(&n->alive, 0);
	for (int i = 0; i < n->nkids; i++)
		wref_release(n->kids[i]);
	wref_release(n->parent);
}

static const wref_type node_type = { .name = "node",
				     .destroy = node_destroy };

static struct node *node_new(const char *name)
{
	struct node *n = wref_new(&node_type, sizeof *n);
	if (n) {
		snprintf(n->name, sizeof n->name, "%s", name);
		atomic_init(&n->alive, 1);
	}
	return n;
}

/* adopt @child (the parent takes over the caller's ref to it) */
static void node_add(struct node *parent, struct node *child)
{
	child->parent = wref_ref_new(parent, NULL, NULL);
	parent->kids[parent->nkids++] = child;
}

/* depth of @n, walking up through the weak parent refs; -1 if some
 * ancestor is gone (the chain was cut) */
static int depth(struct node *n)
{
	int d = 0;
	struct node *cur = wref_retain(n);
	while (cur->parent) {
		struct node *up = wref_ref_get(cur->parent); /* pin or NULL */
		wref_release(cur);
		if (!up)
			return -1;
		if (!atomic_load(&up->alive))
			fprintf(stderr, "BUG: upgraded a destroyed node\n");
		cur = up;
		d++;
	}
	wref_release(cur);
	return d;
}

static void print_path(struct node *n)
{
	printf("%s", n->name);
	struct node *up = wref_ref_get(n->parent);
	while (up) {
		printf(" <- %s", up->name);
		struct node *next = wref_ref_get(up->parent);
		wref_release(up);
		up = next;
	}
	printf(n->parent && !wref_ref_alive(n->parent) ? " <- (gone)\n"
						       : "\n");
}

/* a reader thread: walks up from its leaf until the chain is cut */
static void *reader(void *leaf)
{
	while (depth(leaf) >= 0)
		;
	return NULL;
}

int main(void)
{
	struct node *root = node_new("root");
	struct node *a = node_new("a"), *b = node_new("b");
	node_add(root, a);
	node_add(root, b);
	struct node *leaf = node_new("leaf");
	node_add(a, leaf);

	printf("path: ");
	print_path(leaf);
	printf("depth of leaf: %d\n", depth(leaf));

	/* two readers walk up from the leaf; they hold the leaf itself, not
	 * the tree above it */
	pthread_t t[2];
	wref_retain(leaf);
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, reader, leaf);

	/* drop the root: the tree goes, except the leaf we still hold */
	wref_release(root);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	printf("root released: the readers saw the chain cut, never a "
	       "freed node\n");

	/* the leaf is still valid (the readers' refs), its parent is not */
	printf("path: ");
	print_path(leaf);
	printf("depth of leaf: %d\n", depth(leaf));
	wref_release(leaf);

	wref_flush();
	struct wref_stats st;
	wref_stats(&st);
	printf("objects still alive: %llu\n",
	       (unsigned long long)st.objects_live);
	return 0;
}
