#!/bin/sh
# Builds a data-plane fuzzer (libFuzzer, AddressSanitizer, UndefinedBehaviorSanitizer) to $1:
# TARGET "dataplane" (default: postings into a worker's segment), "dataplane_tcp" (frames from
# two peers into the TCP bridge) or "plane_net" (model-plane frames into a copy of the plane).
# Needs clang (Debian: apt-get install clang). Run it with e.g.
#   native/kernels/fuzz/build.sh /tmp/dp_fuzz && /tmp/dp_fuzz -max_total_time=60
set -eu
out="${1:?usage: build.sh OUTPUT [dataplane|dataplane_tcp|plane_net]}"
target="${2:-dataplane}"
case "$target" in dataplane | dataplane_tcp | plane_net) ;; *) echo "build.sh: unknown target $target" >&2; exit 2 ;; esac
here="$(cd "$(dirname "$0")" && pwd)"
src="$here/../src"
if [ "$target" = plane_net ]; then
  set -- "$src/plane_net.cpp" "$src/socket_io.cpp" "$src/dataplane_os.cpp"
else
  set -- "$src/dataplane_tcp.cpp" "$src/socket_io.cpp" "$src/dataplane_worker.cpp" "$src/dataplane_client.cpp" \
    "$src/dataplane_os.cpp" "$src/attention_runner.cpp" "$src/thread_pool.cpp" "$src/kernels.cpp" \
    "$src/read_ahead_policy.cpp"
fi
exec "${CXX_FUZZ:-clang++}" -std=gnu++17 -g -O1 -pthread \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I"$src" -DLK_VARIANT=portable \
  "$here/${target}_fuzz.cpp" "$@" \
  -o "$out"
