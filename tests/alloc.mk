## allocator route (issue 15): which malloc serves libwref and the program,
## linked as a pkg-config user, with the program on jemalloc, and dlopen().
##  tests/integration/alloc_pkgconfig  -lwref + libwref_jemalloc, as `pkg-config --libs
##                         wref` links: the program's malloc is libc's,
##                         libwref's blocks are jemalloc's
##  tests/integration/alloc_jeapp      -ljemalloc first: both on jemalloc
##  tests/integration/alloc_dlopen     dlopen()s lib/.libs/libwref.so (installcheck: the
##                         installed one) and uses it, without jemalloc
##  tests/unit/alloc_core       the static core names the allocator it chose
ALLOC_TESTS = tests/integration/alloc_dlopen tests/unit/alloc_core
if WREF_JEMALLOC
if !WREF_TSAN
if !WREF_ASAN
ALLOC_TESTS += tests/integration/alloc_pkgconfig tests/integration/alloc_jeapp
endif
endif
endif
TESTS += $(ALLOC_TESTS)
check_PROGRAMS += $(ALLOC_TESTS)

tests_integration_alloc_pkgconfig_SOURCES = tests/integration/alloc_route.c tests/integration/alloc_test.h
tests_integration_alloc_pkgconfig_LDFLAGS = $(AM_LDFLAGS) -Wl,--no-as-needed
tests_integration_alloc_pkgconfig_LDADD = lib/libwref.la lib/libwref_jemalloc.la \
	$(DL_LIBS) -lpthread

tests_integration_alloc_jeapp_SOURCES = tests/integration/alloc_route.c tests/integration/alloc_test.h
tests_integration_alloc_jeapp_CPPFLAGS = $(AM_CPPFLAGS) -DAPP_ON_JEMALLOC
tests_integration_alloc_jeapp_LDFLAGS = $(AM_LDFLAGS) -Wl,--no-as-needed
tests_integration_alloc_jeapp_LDADD = $(JEMALLOC_LIBS) lib/libwref.la \
	lib/libwref_jemalloc.la $(DL_LIBS) -lpthread

## no libwref on its link line: it loads the library itself
tests_integration_alloc_dlopen_SOURCES = tests/integration/alloc_dlopen.c tests/integration/alloc_test.h
tests_integration_alloc_dlopen_CPPFLAGS = $(AM_CPPFLAGS) \
	-DWREF_BUILD_SO='"$(abs_top_builddir)/lib/.libs/libwref.so"'
tests_integration_alloc_dlopen_LDADD = $(DL_LIBS) -lpthread

tests_unit_alloc_core_SOURCES = tests/unit/alloc_core.c
tests_unit_alloc_core_CFLAGS = $(WREF_TEST_CFLAGS)
tests_unit_alloc_core_LDADD = $(WREF_CORE_TEST_LIBS) $(DL_LIBS)

## make installcheck: the installed libwref.so, dlopen()ed; and
## tests/integration/alloc_route.c built with the installed wref.pc's own flags
installcheck-local: installcheck-alloc-dlopen installcheck-alloc-pkgconfig
installcheck-alloc-dlopen: tests/integration/alloc_dlopen$(EXEEXT)
	if test -f "$(DESTDIR)$(libdir)/libwref.so"; then \
	  ./tests/integration/alloc_dlopen$(EXEEXT) "$(DESTDIR)$(libdir)/libwref.so"; fi
installcheck-alloc-pkgconfig:
if WREF_JEMALLOC
if !WREF_TSAN
if !WREF_ASAN
	if test -f "$(DESTDIR)$(libdir)/libwref.so"; then \
	  flags=`$(PKG_CONFIG) --define-variable=prefix="$(DESTDIR)$(prefix)" \
	    --cflags --libs "$(DESTDIR)$(pkgconfigdir)/wref.pc"` && \
	  echo "pkg-config --cflags --libs wref: $$flags" && \
	  $(CC) $(CFLAGS) -o tests/integration/alloc_installed$(EXEEXT) \
	    $(srcdir)/tests/integration/alloc_route.c $$flags \
	    -Wl,-rpath,"$(DESTDIR)$(libdir)" && \
	  ./tests/integration/alloc_installed$(EXEEXT); fi
endif
endif
endif
CLEANFILES += tests/integration/alloc_installed$(EXEEXT)
.PHONY: installcheck-alloc-dlopen installcheck-alloc-pkgconfig
