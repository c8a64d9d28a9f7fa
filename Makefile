# The README's two commands. Everything else is CMake (CMakeLists.txt) and scripts/.
#   make run    install what is missing, build, start aigw on conf/aigw.json
#   make test   install what is missing, build, run the whole test suite (what CI runs)
.PHONY: run test build deps bench clean

JOBS ?= $(shell nproc 2>/dev/null || echo 2)

deps:
	@bash scripts/deps.sh

build: deps
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build build -j$(JOBS)

run: build
	./build/aigw -c conf/aigw.json

test: deps
	@bash scripts/test.sh

bench: build
	bash bench/run.sh

clean:
	rm -rf build build-asan build-fuzz build-sdk
