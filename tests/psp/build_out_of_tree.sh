#!/usr/bin/env bash
# Build one PSP connector the way a third party would: against the Pagoflex
# SDK installed to a prefix, outside the host's build, with only
# find_package(PagoflexSDK); run its own unit tests; leave <name>.so beside
# its build folder for the integration tests.
#   build_out_of_tree.sh <plugin source dir> <build dir> <sdk prefix>
set -euo pipefail
src=$1 out=$2 prefix=$3
name=$(basename "$src")
rm -rf "$out"
cmake -S "$src" -B "$out" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_FLAGS="-Werror" >/dev/null
cmake --build "$out" -j2 >/dev/null
ctest --test-dir "$out" --output-on-failure
cp "$out/$name.so" "$(dirname "$out")/$name.so"
echo "built $(dirname "$out")/$name.so against the SDK in $prefix"
