# dbpki — build, test, demo, install.  See README.md.

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share/dbpki
MANDIR ?= $(PREFIX)/share/man
DESTDIR ?=

CC ?= cc
BUILD ?= build
PKGS := libssl libcrypto libpq libssh2 inih

OPT ?= -O2 -g
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
CFLAGS_ALL := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow \
	-Wformat=2 -Wno-format-nonliteral -Iinclude -pthread \
	-DDBPKI_DATADIR='"$(DATADIR)"' \
	$(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(OPT) $(EXTRA_CFLAGS) $(CFLAGS)
LDLIBS_ALL := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -pthread $(LDLIBS)
ifeq ($(SAN),1)
CFLAGS_ALL += $(SAN_FLAGS)
LDLIBS_ALL += $(SAN_FLAGS)
endif

LIB_SRCS := $(filter-out src/main.c,$(wildcard src/*.c))
LIB_OBJS := $(LIB_SRCS:src/%.c=$(BUILD)/%.o)
HEADERS := $(wildcard include/dbpki/*.h src/*.h)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
TOOL_SRCS := $(wildcard tests/tools/*.c)
TOOL_BINS := $(TOOL_SRCS:tests/tools/%.c=$(BUILD)/tools/%)
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILD)/fuzz/%)
# make fuzz: each target this long; make check runs them for 60 s each.
FUZZ_SECONDS ?= 300

.PHONY: all deps check check-all check-asan-all check-unit check-integration check-asan check-valgrind \
	demo demo-down bench fuzz fuzz-bins install uninstall clean format lab-up lab-down

all: $(BUILD)/dbpki

$(BUILD)/%.o: src/%.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c -o $@ $<

$(BUILD)/dbpki: $(BUILD)/main.o $(LIB_OBJS)
	$(CC) -o $@ $^ $(LDLIBS_ALL)
	@[ "$(BUILD)" != build ] || ln -sf $(BUILD)/dbpki dbpki

$(BUILD)/tests/%: tests/unit/%.c $(LIB_OBJS) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Itests/unit -o $@ $< $(LIB_OBJS) $(LDLIBS_ALL) -lcmocka

$(BUILD)/tools/%: tests/tools/%.c $(LIB_OBJS) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(LIB_OBJS) $(LDLIBS_ALL)

$(BUILD)/fuzz/%: tests/fuzz/%.c $(LIB_OBJS) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -fsanitize=fuzzer -o $@ $< $(LIB_OBJS) $(LDLIBS_ALL) -fsanitize=fuzzer

fuzz-bins: $(FUZZ_BINS)

# libFuzzer targets (clang, ASan+UBSan) for every parser of outside input.
fuzz: deps
	$(MAKE) BUILD=build-fuzz CC=clang SAN=1 OPT="-O1 -g" \
		EXTRA_CFLAGS=-fsanitize=fuzzer-no-link fuzz-bins
	@tests/fuzz/run.sh build-fuzz $(FUZZ_SECONDS)

# Installs the Debian packages the build and the tests need, only if missing.
deps:
	@tests/lab/deps.sh

# What CI runs (.ci/run): the unit tests as built, and under valgrind; the
# unit and integration tests again with dbpki built with ASan+UBSan (the
# integration suite runs once, on that build, to keep the time down); every
# fuzz target for 60 s.
check: deps
	$(MAKE) all $(UNIT_BINS) $(TOOL_BINS)
	@tests/run.sh unit $(BUILD)
	@VALGRIND=1 tests/run.sh unit $(BUILD)
	$(MAKE) check-asan-all
	$(MAKE) fuzz FUZZ_SECONDS=60

check-asan-all:
	$(MAKE) BUILD=build-asan SAN=1 OPT="-O1 -g" check-all

check-all: $(UNIT_BINS) $(BUILD)/dbpki $(TOOL_BINS)
	@tests/run.sh all $(BUILD)

check-unit: $(UNIT_BINS)
	@tests/run.sh unit $(BUILD)

check-integration: $(BUILD)/dbpki $(TOOL_BINS)
	@tests/run.sh integration $(BUILD)

# The whole suite under AddressSanitizer and UndefinedBehaviorSanitizer.
check-asan: deps check-asan-all

check-valgrind: deps $(UNIT_BINS)
	@VALGRIND=1 tests/run.sh unit $(BUILD)

demo: deps all
	@tests/lab/demo.sh

demo-down:
	@tests/lab/lab.sh down --dir $${DBPKI_DEMO_DIR:-/tmp/dbpki-demo}

bench: deps all
	@for b in tests/bench/*.sh; do echo "== $$b"; bash $$b || exit 1; done

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR)
	install -m 0755 $(BUILD)/dbpki $(DESTDIR)$(BINDIR)/dbpki
	cp -R playbooks templates $(DESTDIR)$(DATADIR)/
	if [ -f docs/dbpki.1 ]; then install -d $(DESTDIR)$(MANDIR)/man1 && \
		install -m 0644 docs/dbpki.1 $(DESTDIR)$(MANDIR)/man1/dbpki.1; fi

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/dbpki $(DESTDIR)$(MANDIR)/man1/dbpki.1
	rm -rf $(DESTDIR)$(DATADIR)

format:
	clang-format -i src/*.c include/dbpki/*.h tests/unit/*.c

clean:
	rm -rf build build-asan build-fuzz dbpki
