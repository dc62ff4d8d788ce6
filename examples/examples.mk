## examples.mk: the seed scenarios of Python's weakref tutorials in C.
## Each is built by make and run by make check, its output compared with
## examples/NAME.expected (examples/check_examples.sh).
EXAMPLES = \
	examples/observer \
	examples/tree \
	examples/tempfile \
	examples/pitfalls \
	examples/conncache \
	examples/widgets \
	examples/sessions \
	examples/readme

noinst_PROGRAMS += $(EXAMPLES)
examples_observer_SOURCES = examples/observer.c
examples_observer_LDADD = lib/libwref.la -lpthread
examples_tree_SOURCES = examples/tree.c
examples_tree_LDADD = lib/libwref.la -lpthread
examples_tempfile_SOURCES = examples/tempfile.c
examples_tempfile_LDADD = lib/libwref.la -lpthread
examples_pitfalls_SOURCES = examples/pitfalls.c
examples_pitfalls_LDADD = lib/libwref.la -lpthread
examples_conncache_SOURCES = examples/conncache.c
examples_conncache_LDADD = lib/libwref.la -lpthread
examples_widgets_SOURCES = examples/widgets.c
examples_widgets_LDADD = lib/libwref.la -lpthread
examples_sessions_SOURCES = examples/sessions.c
examples_sessions_LDADD = lib/libwref.la -lpthread
examples_readme_SOURCES = examples/readme.c
examples_readme_LDADD = lib/libwref.la -lpthread

TESTS += examples/check_examples.sh
EXTRA_DIST += examples/check_examples.sh $(EXAMPLES:=.expected) \
	examples/demo.expected
