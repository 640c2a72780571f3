#!/usr/bin/env bash
# Assembles the agent's base root file system from Debian packages, with no registry:
# iptables and iproute2 (tc) and everything they depend on, unpacked with dpkg -x.
# Writes a tar of the root file system to $1, which the harness imports (`docker import`).
# Needs apt-get with current package lists (run `apt-get update` once if it fails).
set -euo pipefail
out=${1:?usage: build-base.sh OUT.tar}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
packages=(iptables iproute2)
# The dependency closure; lines starting with '<' are virtual packages.
mapfile -t closure < <(apt-cache depends --recurse --no-recommends --no-suggests \
  --no-conflicts --no-breaks --no-replaces --no-enhances "${packages[@]}" \
  | grep -E '^[a-z0-9]' | sort -u)
echo "meshsim: fetching ${#closure[@]} Debian packages for the agent base image" >&2
(cd "$work" && apt-get download -qq "${closure[@]}" >&2)
mkdir "$work/root"
for deb in "$work"/*.deb; do
  dpkg-deb -x "$deb" "$work/root"
done
# What the packages' maintainer scripts (which dpkg -x does not run) would link.
ln -sf xtables-nft-multi "$work/root/usr/sbin/iptables"
ln -sf xtables-legacy-multi "$work/root/usr/sbin/iptables-legacy"
mkdir -p "$work/root/tmp" "$work/root/run"
# usrmerge: Debian 12 packages still ship some files under /bin, /sbin, /lib.
for d in bin sbin lib lib64; do
  if [ -d "$work/root/$d" ] && [ ! -L "$work/root/$d" ]; then
    mkdir -p "$work/root/usr/$d"
    cp -a "$work/root/$d/." "$work/root/usr/$d/"
    rm -rf "${work:?}/root/$d"
  fi
  ln -sfn "usr/$d" "$work/root/$d"
done
tar -C "$work/root" -cf "$out" .
