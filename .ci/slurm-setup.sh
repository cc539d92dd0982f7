#!/usr/bin/env bash
# Install what a one-machine Slurm needs for the tests (tests/test_slurm.py starts and stops the daemons
# itself): slurmctld, slurmd and munge from Debian (Slurm 22.05 on bookworm). Needs root; a no-op where
# they are already installed.
set -euo pipefail
if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "slurm-setup: slurmctld, slurmd and munge are missing and installing them needs root" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends slurmctld slurmd slurm-client munge
# Debian starts the packaged services where systemd runs; the tests use their own daemons and config.
for s in slurmctld slurmd munge; do
  systemctl disable --now "$s" 2>/dev/null || true
done
