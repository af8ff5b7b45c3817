# Tessera: the two commands a new user runs are `make demo` and `make test`. Each installs what is missing first.
SHELL := /bin/bash
APT_BUILD := libdcmtk-dev libopenblas-dev libopenjp2-7-dev zlib1g-dev libsqlite3-dev
APT_TOOLS := dcmtk dicom3tools openssl
# `make deb` and `make test-deb` (dpkg-shlibdeps; debootstrap; systemd-analyze and systemd-nspawn for the units).
APT_PKG := dpkg-dev debootstrap systemd systemd-container
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SWIFT ?= swift
SWIFT_FLAGS ?=
# OpenBLAS 0.3.21 does not recognise recent CPUs and falls back to slow Prescott kernels. The tessera binary fixes
# this itself (it re-executes with OPENBLAS_CORETYPE set); the test runner gets it from here.
OPENBLAS_CORETYPE := $(shell bash scripts/openblas_coretype.sh)
export OPENBLAS_CORETYPE

# The release build links the Swift runtime statically: the binary needs only Debian's libraries (the .deb below).
RELEASE_FLAGS := -c release --static-swift-stdlib

.PHONY: deps build release test demo check-nifti check-torch sample-data bench clean fuzz fuzz-smoke \
	install install-files uninstall deb test-deb

# Installs the Debian packages of the list that are missing.
define apt_install
@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  $(SUDO) apt-get -o DPkg::Lock::Timeout=600 update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get -o DPkg::Lock::Timeout=600 install -y -qq $$missing >/dev/null; \
	fi
endef

deps:
	$(call apt_install,$(APT_BUILD) $(APT_TOOLS))

build: deps
	$(SWIFT) build $(SWIFT_FLAGS)

release: deps
	$(SWIFT) build $(RELEASE_FLAGS) $(SWIFT_FLAGS)

test: deps
	bash scripts/check_format.sh
	$(SWIFT) build --build-tests $(SWIFT_FLAGS)
	$(SWIFT) test --skip-build $(SWIFT_FLAGS)
	$(MAKE) fuzz-smoke

# libFuzzer targets (docs/fuzzing.md), built on the debug build of `make test`. `make fuzz` runs each target
# FUZZ_SECONDS and appends the figures to Fuzz/results.md; `fuzz-smoke` (part of `make test`) runs each 15 s and
# fails on a crash. FUZZ_TARGETS picks targets (default: all).
FUZZ_SECONDS ?= 600
FUZZ_SMOKE_SECONDS ?= 15
FUZZ_TARGETS ?=
fuzz: deps
	$(SWIFT) build --build-tests $(SWIFT_FLAGS)
	bash Fuzz/build.sh $(FUZZ_TARGETS)
	bash Fuzz/run.sh -s $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-smoke:
	bash Fuzz/build.sh $(FUZZ_TARGETS)
	bash Fuzz/run.sh -r -s $(FUZZ_SMOKE_SECONDS) $(FUZZ_TARGETS)

# What works end to end today: read the sample sites, report them, and convert a study and its SEG to NIfTI.
demo: release
	TESSERA=$$($(SWIFT) build -c release --show-bin-path)/tessera bash scripts/demo.sh

# The NIfTI exports checked by nibabel against pydicom (needs PyPI; its output is committed as evidence): the CT of
# every site, the labels of the SEG site (the RTSTRUCT site's are checked by scripts/reference/rtstruct_written_golden.py).
check-nifti: release
	TESSERA=$$($(SWIFT) build -c release --show-bin-path)/tessera bash scripts/demo.sh
	for site in community-hospital research-center treatment-center; do \
	  read -r uid seg < <(python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["series"][0]; print(s["seriesInstanceUID"], (s["segmentations"] or [""])[0])' out/demo/$$site-inspect.json); \
	  if [ -n "$$seg" ]; then labels=(--labels out/demo/$$site-labels.nii.gz --seg "$$seg"); else labels=(); fi; \
	  python3 scripts/reference/check_nifti.py --dicom sample-data/$$site --series-uid "$$uid" --image out/demo/$$site-ct.nii.gz \
	    "$${labels[@]}" --json scripts/reference/results/check_nifti_$$site.json || exit 1; \
	done

# Tessera checkpoints load into the PyTorch reference modules and MONAI's BasicUNet (needs PyPI for torch and monai;
# skipped offline). The output is committed as evidence in Tests/NeuralNetworkTests/Golden/interop*.txt.
check-torch: deps
	$(SWIFT) build --build-tests $(SWIFT_FLAGS)
	TESSERA_INTEROP_DIR=/tmp/tessera-interop $(SWIFT) test --skip-build $(SWIFT_FLAGS) --filter InteropTests
	python3 scripts/reference/torch_golden.py --skip-if-offline --check /tmp/tessera-interop \
	  | tee Tests/NeuralNetworkTests/Golden/interop.txt
	python3 scripts/reference/models_golden.py --skip-if-offline --check /tmp/tessera-interop \
	  | tee Tests/NeuralNetworkTests/Golden/interop-models.txt

sample-data: release
	$$($(SWIFT) build -c release --show-bin-path)/tessera sample-data --output sample-data

bench: release
	bash Benchmarks/dicom_load.sh

# Install (README "Install as a service"): the release binary, the pipelines, the docs, the systemd units and their
# settings files (an existing server.env is kept). DESTDIR stages the files (as `make deb` does); as root without
# DESTDIR, the package's postinst then makes the tessera user and folders. `install-files` copies an existing build.
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share/tessera
DOCDIR ?= $(PREFIX)/share/doc/tessera
SYSCONFDIR ?= $(if $(filter /usr /usr/local,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR ?= $(if $(filter /usr,$(PREFIX)),/lib/systemd/system,$(PREFIX)/lib/systemd/system)
TESSERA_BIN ?= $$($(SWIFT) build $(RELEASE_FLAGS) --show-bin-path)/tessera
SUBST := sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' -e 's|@DOCDIR@|$(DOCDIR)|g'
UNITS := tessera-server.service tessera-client@.service

install: deps
	$(SWIFT) build $(RELEASE_FLAGS) --product tessera $(SWIFT_FLAGS)
	$(MAKE) --no-print-directory install-files
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then sh packaging/debian/postinst configure; fi

install-files:
	@bin=$(TESSERA_BIN); [ -x "$$bin" ] || { echo "no release build at $$bin: run make release"; exit 1; }; \
	install -D -m 0755 "$$bin" "$(DESTDIR)$(BINDIR)/tessera"
	install -d "$(DESTDIR)$(DATADIR)/pipelines" "$(DESTDIR)$(DOCDIR)/docs" "$(DESTDIR)$(UNITDIR)" \
	  "$(DESTDIR)$(SYSCONFDIR)/tessera"
	install -m 0644 pipelines/*.yaml "$(DESTDIR)$(DATADIR)/pipelines/"
	install -m 0644 README.md "$(DESTDIR)$(DOCDIR)/"
	install -m 0644 docs/*.md docs/*.svg "$(DESTDIR)$(DOCDIR)/docs/"
	for u in $(UNITS); do $(SUBST) "packaging/systemd/$$u.in" >"$(DESTDIR)$(UNITDIR)/$$u"; \
	  chmod 0644 "$(DESTDIR)$(UNITDIR)/$$u"; done
	$(SUBST) packaging/etc/client.env.example >"$(DESTDIR)$(SYSCONFDIR)/tessera/client.env.example"
	[ -e "$(DESTDIR)$(SYSCONFDIR)/tessera/server.env" ] || \
	  $(SUBST) packaging/etc/server.env >"$(DESTDIR)$(SYSCONFDIR)/tessera/server.env"
	chmod 0644 "$(DESTDIR)$(SYSCONFDIR)/tessera/client.env.example" "$(DESTDIR)$(SYSCONFDIR)/tessera/server.env"

# Removes what `install` copied; keeps the settings in $(SYSCONFDIR)/tessera, /var/lib/tessera and the user.
uninstall:
	rm -f "$(DESTDIR)$(BINDIR)/tessera" "$(DESTDIR)$(UNITDIR)/tessera-server.service" \
	  "$(DESTDIR)$(UNITDIR)/tessera-client@.service"
	rm -rf "$(DESTDIR)$(DATADIR)" "$(DESTDIR)$(DOCDIR)"

# The Debian package out/tessera_<version>_amd64.deb (dpkg-deb; Depends from dpkg-shlibdeps), and its test: installed
# with apt into a fresh Debian 12 root (debootstrap, cached under /var/cache/tessera-deb-test), then `tessera
# --version` and `tessera inspect` on the sample data there (root: chroot).
deb: deps
	$(call apt_install,$(APT_PKG))
	$(SWIFT) build $(RELEASE_FLAGS) --product tessera $(SWIFT_FLAGS)
	bash scripts/build_deb.sh

test-deb: deb
	$(SUDO) bash scripts/test_deb.sh out/tessera_*_$$(dpkg --print-architecture).deb

clean:
	rm -rf .build .build-fuzz out
