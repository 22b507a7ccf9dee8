# dbpki — build, test, demo, install, package.  See README.md.
#
# Nothing below runs pkg-config or git while make reads this file: the flags
# are computed the first time a recipe needs them, so `make demo` and
# `make check` on a machine without the libraries install them (deps) first
# and only then build, in a second make that sees them.

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share/dbpki
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/dbpki
# Debian puts units in /lib/systemd/system; any other prefix keeps them inside.
UNITDIR ?= $(if $(filter /usr,$(PREFIX)),/lib/systemd/system,$(PREFIX)/lib/systemd/system)
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR ?= $(PREFIX)/share/zsh/site-functions
DESTDIR ?=

CC ?= cc
BUILD ?= build
PKGS := libssl libcrypto libpq libssh2 inih libp11 p11-kit-1

OPT ?= -O2 -g
# A distribution build clears it (make WERROR=): a newer compiler's new
# warning must not break a package build.
WERROR ?= -Werror
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

# pkg-config, run once, on first use, and loud when a library is missing
# (an empty -I list only shows up later as "libpq-fe.h: No such file").
pkg_flags = $(if $(shell pkg-config --exists $(PKGS) && echo ok),$(shell pkg-config $(1) $(PKGS)),$(error pkg-config finds not all of $(PKGS) ($(shell pkg-config --print-errors --exists $(PKGS) 2>&1 | head -1)); run `make deps` (tests/lab/deps.sh) first))
PKG_CFLAGS = $(eval PKG_CFLAGS := $$(call pkg_flags,--cflags))$(PKG_CFLAGS)
PKG_LIBS = $(eval PKG_LIBS := $$(call pkg_flags,--libs))$(PKG_LIBS)
# The version: git describe in a checkout, else the VERSION file a package
# build writes into its copy, else the packaging changelog.
VERSION = $(eval VERSION := $$(shell templates/packaging/version.sh))$(VERSION)

CFLAGS_ALL = -std=c11 -D_GNU_SOURCE -Wall -Wextra $(WERROR) -Wshadow \
	-Wformat=2 -Wno-format-nonliteral -Iinclude -pthread \
	$(PKG_CFLAGS) $(CPPFLAGS) $(OPT) $(EXTRA_CFLAGS) $(CFLAGS)
LDFLAGS_ALL = $(LDFLAGS)
LDLIBS_ALL = $(PKG_LIBS) -pthread $(LDLIBS)
ifeq ($(SAN),1)
CFLAGS_ALL += $(SAN_FLAGS)
LDFLAGS_ALL += $(SAN_FLAGS)
endif
# Only these two objects see the install paths and the version, so a
# `make install PREFIX=/usr` after a plain `make` rebuilds them, not all.
FLAGS_template = -DDBPKI_DATADIR='"$(DATADIR)"'
FLAGS_main = -DDBPKI_VERSION='"$(VERSION)"' -DDBPKI_DOCDIR='"$(DOCDIR)"'
FLAGS_cflags = $(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) $(LDLIBS_ALL)

LIB_SRCS := $(filter-out src/main.c,$(wildcard src/*.c))
LIB_OBJS := $(LIB_SRCS:src/%.c=$(BUILD)/%.o)
HEADERS := $(wildcard include/dbpki/*.h src/*.h)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
TOOL_SRCS := $(wildcard tests/tools/*.c)
TOOL_BINS := $(TOOL_SRCS:tests/tools/%.c=$(BUILD)/tools/%)
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILD)/fuzz/%)
# make fuzz: each target this long; make check runs them for 20 s each.
FUZZ_SECONDS ?= 300
# What `make deb` and the packaging tests need on top of tests/lab/deps.sh.
DEB_TOOLS := build-essential dpkg-dev debhelper fakeroot lintian mandoc man-db
# ... and what the tests need besides: zsh -n checks the completion; gdb stops
# a writer at a chosen function and strace watches fsync (test_store_concurrency,
# test_node_files).
TEST_TOOLS := zsh gdb strace
# Data installed under DATADIR: the playbooks and the node-side templates of
# each platform (not systemd/, packaging/, completion/: those install elsewhere).
PLATFORM_TEMPLATES = $(filter-out systemd packaging completion,$(notdir $(patsubst %/,%,$(wildcard templates/*/))))

.PHONY: all deps check check-build check-all check-asan-all check-unit check-integration \
	check-asan check-valgrind demo demo-down bench fuzz fuzz-bins install uninstall \
	deb clean format lab-up lab-down FORCE

all: $(BUILD)/dbpki

# A stamp per flag set, rewritten only when the flags change: objects built
# with another PREFIX, version, CPPFLAGS or sanitizer are rebuilt.
eq = $(and $(findstring x$(1)x,x$(2)x),$(findstring x$(2)x,x$(1)x))
FLAG_STAMPS = $(BUILD)/cflags.flags $(BUILD)/main.flags $(BUILD)/template.flags
$(FLAG_STAMPS): $(BUILD)/%.flags: FORCE
	@$(shell mkdir -p $(@D))$(if $(call eq,$(file <$@),$(FLAGS_$*)),:,$(file >$@,$(FLAGS_$*))echo "$@: flags changed")
FORCE:

$(BUILD)/%.o: src/%.c $(HEADERS) $(BUILD)/cflags.flags
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(FLAGS_$*) -c -o $@ $<

$(BUILD)/main.o: $(BUILD)/main.flags
$(BUILD)/template.o: $(BUILD)/template.flags

$(BUILD)/dbpki: $(BUILD)/main.o $(LIB_OBJS)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL)
	@[ "$(BUILD)" != build ] || ln -sf $(BUILD)/dbpki dbpki

# The unit tests see DATADIR as template.o does (test_template checks it).
$(BUILD)/tests/%: tests/unit/%.c $(LIB_OBJS) $(HEADERS) $(BUILD)/template.flags
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(FLAGS_template) -Itests/unit $(LDFLAGS_ALL) -o $@ $< $(LIB_OBJS) $(LDLIBS_ALL) -lcmocka

$(BUILD)/tools/%: tests/tools/%.c $(LIB_OBJS) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) -o $@ $< $(LIB_OBJS) $(LDLIBS_ALL)

$(BUILD)/fuzz/%: tests/fuzz/%.c $(LIB_OBJS) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -fsanitize=fuzzer $(LDFLAGS_ALL) -o $@ $< $(LIB_OBJS) $(LDLIBS_ALL) -fsanitize=fuzzer

fuzz-bins: $(FUZZ_BINS)

# libFuzzer targets (clang, ASan+UBSan) for every parser of outside input.
fuzz: deps
	$(MAKE) BUILD=build-fuzz CC=clang SAN=1 OPT="-O1 -g" \
		EXTRA_CFLAGS=-fsanitize=fuzzer-no-link fuzz-bins
	@tests/fuzz/run.sh build-fuzz $(FUZZ_SECONDS)

# Installs the Debian packages the build and the tests need, only if missing.
# The targets that build call make again afterwards, never list deps beside
# a build prerequisite: make -j would compile before the headers exist.
# check and deb also want the packaging tools (their tests build the package
# and read the man pages); demo does not.
deps:
	@DBPKI_EXTRA_PKGS="$(DEPS_EXTRA) $(DBPKI_EXTRA_PKGS)" tests/lab/deps.sh

check-build: DEPS_EXTRA = $(DEB_TOOLS) $(TEST_TOOLS)
deb: DEPS_EXTRA = $(DEB_TOOLS)

# The first stage of `make check`: packages, then every binary it runs.
check-build: deps
	$(MAKE) all $(UNIT_BINS) $(TOOL_BINS)

# What CI runs (.ci/run): the unit tests as built, and under valgrind; the
# unit and integration tests again with dbpki built with ASan+UBSan (the
# integration suite runs once, on that build, to keep the time down); every
# fuzz target for 20 s.
check: check-build
	@tests/run.sh unit $(BUILD)
	@VALGRIND=1 tests/run.sh unit $(BUILD)
	$(MAKE) check-asan-all
	$(MAKE) fuzz FUZZ_SECONDS=20

check-asan-all:
	$(MAKE) BUILD=build-asan SAN=1 OPT="-O1 -g" check-all

check-all: $(UNIT_BINS) $(BUILD)/dbpki $(TOOL_BINS)
	@tests/run.sh all $(BUILD)

check-unit: $(UNIT_BINS)
	@tests/run.sh unit $(BUILD)

check-integration: $(BUILD)/dbpki $(TOOL_BINS)
	@tests/run.sh integration $(BUILD)

# The whole suite under AddressSanitizer and UndefinedBehaviorSanitizer.
check-asan: DEPS_EXTRA = $(DEB_TOOLS) $(TEST_TOOLS)
check-asan: deps
	$(MAKE) check-asan-all

check-valgrind: deps
	$(MAKE) $(UNIT_BINS)
	@VALGRIND=1 tests/run.sh unit $(BUILD)

demo: deps
	$(MAKE) all $(BUILD)/tools/labinit
	@DBPKI_BUILD=$(CURDIR)/$(BUILD) tests/lab/demo.sh

demo-down:
	@d=$${DBPKI_DEMO_DIR:-/var/tmp/dbpki-demo}; \
		if [ -f "$$d/lab.conf" ]; then tests/lab/netlab.sh down --dir "$$d" && rm -rf "$$d"; \
		else echo "demo-down: no demo lab in $$d"; fi

# A netlab (tests/lab/netlab.sh, issue 11) to try dbpki by hand, as root:
# node1 primary, node2 replica, node3 client; the inventory is
# $(NETLAB_DIR)/cluster.ini and dbpki runs on the lab's admin side.
NETLAB_DIR ?= /var/tmp/dbpki-netlab
lab-up: deps
	$(MAKE) all $(BUILD)/tools/labinit
	@mkdir -p $(NETLAB_DIR)
	@DBPKI_BUILD=$(CURDIR)/$(BUILD) tests/lab/netlab.sh up --dir $(NETLAB_DIR) \
		--node node1:primary:pgdata --node node2:replica:pgdata --node node3:client
	@tests/lab/netlab.sh inventory --dir $(NETLAB_DIR) >/dev/null
	@echo "try: tests/lab/netlab.sh exec --dir $(NETLAB_DIR) admin -- $(BUILD)/dbpki bootstrap -c $(NETLAB_DIR)/cluster.ini"

lab-down:
	@tests/lab/netlab.sh down --dir $(NETLAB_DIR) && rm -rf $(NETLAB_DIR)

bench: deps
	$(MAKE) all
	@for b in tests/bench/*.sh; do [ "$$b" = tests/bench/lib.sh ] && continue; \
		echo "== $$b"; bash $$b || exit 1; done

# The units name BINDIR/dbpki (the templates say /usr/local/bin/dbpki, the
# default); the runbooks go where the help texts' "docs/NAME.md" points,
# DOCDIR/docs/.
install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR)/playbooks \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) \
		$(DESTDIR)$(DOCDIR)/docs $(DESTDIR)$(DOCDIR)/examples
	install -m 0755 $(BUILD)/dbpki $(DESTDIR)$(BINDIR)/dbpki
	install -m 0644 playbooks/*.ini $(DESTDIR)$(DATADIR)/playbooks/
	for p in $(PLATFORM_TEMPLATES); do \
		install -d $(DESTDIR)$(DATADIR)/templates/$$p && \
		install -m 0644 templates/$$p/* $(DESTDIR)$(DATADIR)/templates/$$p/ || exit 1; \
	done
	for u in templates/systemd/*; do \
		sed 's#/usr/local/bin/dbpki#$(BINDIR)/dbpki#g' $$u \
			>$(DESTDIR)$(UNITDIR)/$${u##*/} && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$${u##*/} || exit 1; \
	done
	install -m 0644 docs/dbpki.1 $(DESTDIR)$(MANDIR)/man1/dbpki.1
	install -m 0644 docs/dbpki-inventory.5 $(DESTDIR)$(MANDIR)/man5/dbpki-inventory.5
	install -m 0644 templates/completion/dbpki.bash $(DESTDIR)$(BASHCOMPDIR)/dbpki
	install -m 0644 templates/completion/_dbpki $(DESTDIR)$(ZSHCOMPDIR)/_dbpki
	install -m 0644 docs/*.md $(DESTDIR)$(DOCDIR)/docs/
	install -m 0644 README.md $(DESTDIR)$(DOCDIR)/README.md
	install -m 0644 templates/cluster.ini.example $(DESTDIR)$(DOCDIR)/examples/cluster.ini.example

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/dbpki $(DESTDIR)$(MANDIR)/man1/dbpki.1 \
		$(DESTDIR)$(MANDIR)/man5/dbpki-inventory.5 \
		$(DESTDIR)$(BASHCOMPDIR)/dbpki $(DESTDIR)$(ZSHCOMPDIR)/_dbpki
	for u in templates/systemd/*; do rm -f $(DESTDIR)$(UNITDIR)/$${u##*/}; done
	rm -rf $(DESTDIR)$(DATADIR) $(DESTDIR)$(DOCDIR)

# The Debian package, built by dpkg-buildpackage from a copy of the tree in
# BUILD/deb/ with templates/packaging/debian/ as its debian/; lintian must
# report no error.  Result: BUILD/deb/dbpki_VERSION_ARCH.deb.
deb: deps
	@templates/packaging/build-deb.sh $(BUILD)/deb

format:
	clang-format -i src/*.c include/dbpki/*.h tests/unit/*.c

clean:
	rm -rf build build-asan build-fuzz dbpki
