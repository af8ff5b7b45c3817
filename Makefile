# Tessera: the two commands a new user runs are `make demo` and `make test`. Each installs what is missing first.
SHELL := /bin/bash
APT_BUILD := libdcmtk-dev libopenblas-dev libopenjp2-7-dev zlib1g-dev libsqlite3-dev
APT_TOOLS := dcmtk dicom3tools openssl
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SWIFT ?= swift
SWIFT_FLAGS ?=
# OpenBLAS 0.3.21 does not recognise recent CPUs and falls back to slow Prescott kernels. The tessera binary fixes
# this itself (it re-executes with OPENBLAS_CORETYPE set); the test runner gets it from here.
OPENBLAS_CORETYPE := $(shell bash scripts/openblas_coretype.sh)
export OPENBLAS_CORETYPE

.PHONY: deps build release test demo check-nifti check-torch sample-data bench clean fuzz fuzz-smoke

deps:
	@missing=""; for p in $(APT_BUILD) $(APT_TOOLS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  $(SUDO) apt-get -o DPkg::Lock::Timeout=600 update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get -o DPkg::Lock::Timeout=600 install -y -qq $$missing >/dev/null; \
	fi

build: deps
	$(SWIFT) build $(SWIFT_FLAGS)

release: deps
	$(SWIFT) build -c release $(SWIFT_FLAGS)

test: deps
	bash scripts/check_format.sh
	$(SWIFT) build --build-tests $(SWIFT_FLAGS)
	$(SWIFT) test --skip-build $(SWIFT_FLAGS)
	$(MAKE) fuzz-smoke

# libFuzzer targets (docs/fuzzing.md), built on the debug build of `make test`. `make fuzz` runs each target
# FUZZ_SECONDS and appends the figures to Fuzz/results.md; `fuzz-smoke` (part of `make test`) runs each 30 s and
# fails on a crash. FUZZ_TARGETS picks targets (default: all).
FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?=
fuzz: deps
	$(SWIFT) build --build-tests $(SWIFT_FLAGS)
	bash Fuzz/build.sh $(FUZZ_TARGETS)
	bash Fuzz/run.sh -s $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-smoke:
	bash Fuzz/build.sh $(FUZZ_TARGETS)
	bash Fuzz/run.sh -r -s 30 $(FUZZ_TARGETS)

# What works end to end today: read the sample sites, report them, and convert a study and its SEG to NIfTI.
demo: release
	TESSERA=$$($(SWIFT) build -c release --show-bin-path)/tessera bash scripts/demo.sh

# The NIfTI exports checked by nibabel against pydicom (needs PyPI; its output is committed as evidence).
check-nifti: release
	TESSERA=$$($(SWIFT) build -c release --show-bin-path)/tessera bash scripts/demo.sh
	for site in community-hospital research-center treatment-center; do \
	  seg=$$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["series"][0]["segmentations"][0])' out/demo/$$site-inspect.json); \
	  python3 scripts/reference/check_nifti.py --dicom "$$(dirname "$$seg")/.." --image out/demo/$$site-ct.nii.gz \
	    --labels out/demo/$$site-labels.nii.gz --seg "$$seg" --json scripts/reference/results/check_nifti_$$site.json || exit 1; \
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

clean:
	rm -rf .build .build-fuzz out
