#!/usr/bin/env bash
# The thread-policy table (benchmarks/README.md, "CPU threads"): ms per generator iteration of a
# gradient penalty (wgan_gp), a first-order penalty (slogan) and GroupSort on every workload, at 1
# and 2 threads, alone and beside one busy single-threaded process. Run it on an idle machine;
# each cell stops after --max-seconds. Writes results/threads/speed.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
out=results/threads/speed.txt
mkdir -p results/threads
[ -n "${SCRIPTS:-}" ] || : > "$out"  # SCRIPTS="…": only those, added to the file
for script in ${SCRIPTS:-wgan_gp slogan wgan_groupsort}; do
  for workload in "--dims 128 512" "--data digits --dims 128" "--data mnist --batch 50 --dims 32 64"; do
    # shellcheck disable=SC2086
    python benchmarks/speed.py --script "$script" $workload --threads 1 2 --neighbour \
      --iters 40 --warmup 3 --max-seconds "${MAX_SECONDS:-15}" | tee -a "$out"
  done
done
