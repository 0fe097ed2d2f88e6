# referral: PGXS build.  `make test` and `make demo` set up everything they need
# (apt packages, a throwaway cluster); see README.md.

EXTENSION    = referral
EXTVERSION   = 0.3
MODULE_big   = referral
OBJS         = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))

# The current install script is assembled from sql/install/*.sql, in file-name
# order, so that each concern keeps its own file.  Released versions keep their
# install script as released, and every release adds an upgrade script.
DATA_built   = sql/referral--$(EXTVERSION).sql
DATA         = sql/referral--0.1.sql sql/referral--0.1--0.2.sql sql/referral--0.2.sql sql/referral--0.2--0.3.sql
EXTRA_CLEAN  = sql/referral--$(EXTVERSION).sql

# pg_regress: every sql/NAME.sql except the install script is a test.
REGRESS      = $(sort $(patsubst sql/%.sql,%,$(filter-out sql/referral--%,$(wildcard sql/*.sql))))
REGRESS_OPTS = --load-extension=referral

# Isolation specs (concurrency): test/specs/NAME.spec, expected/NAME.out.
ISOLATION      = $(sort $(patsubst test/specs/%.spec,%,$(wildcard test/specs/*.spec)))
ISOLATION_OPTS = --inputdir=test --load-extension=referral

PG_CONFIG   ?= pg_config
PG_CPPFLAGS  = -I$(srcdir)/src
PG_CFLAGS    = -Wall -Wextra -Wno-unused-parameter -Wno-sign-compare -Wno-missing-field-initializers
# Warnings are errors in `make test` (and so in CI), not in a user's `make install`.
ifdef WERROR
PG_CFLAGS   += -Werror
endif

PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifeq ($(wildcard $(PGXS)),)
# No server headers yet: only the set-up targets below can run.
.DEFAULT_GOAL := deps
else
include $(PGXS)
endif

sql/referral--$(EXTVERSION).sql: $(sort $(wildcard sql/install/*.sql))
	cat $^ > $@

.PHONY: deps test demo bench unit soak fuzz citus-check

# Install what a fresh Debian 12 machine lacks (needs root and apt).
deps:
	@bash test/deps.sh

# Build, install, start a throwaway cluster, run every test.
test: deps
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory all WERROR=1
	@$(MAKE) --no-print-directory install
	@bash test/run.sh

# Plain-C unit tests of the server-independent core (src/*_core.c).
unit:
	@bash test/unit/run.sh

# libFuzzer harnesses of the C core (test/fuzz/fuzz_*.c), FUZZ_SECONDS (default 300) each.
fuzz:
	@bash test/fuzz/run.sh $${FUZZ_SECONDS:-300}

demo: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory install
	@bash test/demo/demo.sh

# Speed, as ratios against baselines measured in the same run (README, "Performance").
bench: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory install
	@bash test/bench/bench.sh

# A mixed concurrent workload, then audit() and the ledger's sums must balance.
soak: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory install
	@bash test/soak/soak.sh

# The same story on one node and on a local Citus cluster of three nodes, the orders
# table distributed by tenant (test/citus/); needs Citus installed, not part of test.
citus-check: deps
	@bash test/citus/require_citus.sh
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory install
	@bash test/citus/citus_check.sh
