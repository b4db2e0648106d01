#!/usr/bin/env bash
# Packages every built Meshguard plugin as an OCI image Istio can pull, pushes
# it, and prints the sha256 of each module for the WasmPlugin `sha256` field.
#   envoy/istio/oci/build.sh ghcr.io/acme 0.1.0
# Needs docker and a login to the registry. Two layouts work with
# Istio; this builds the Docker "compat" one (see Dockerfile). With oras, the
# OCI-spec layout is:
#   oras push REGISTRY/meshguard-trace:TAG \
#     --artifact-type application/vnd.module.wasm.config.v1+json \
#     meshguard_trace.wasm:application/vnd.module.wasm.content.layer.v1+wasm
set -euo pipefail
registry=${1:?usage: build.sh REGISTRY TAG}
tag=${2:?usage: build.sh REGISTRY TAG}
root=$(cd "$(dirname "$0")/../../.." && pwd)
modules="$root/target/wasm32-wasip1/wasm"
found=0
for wasm in "$modules"/meshguard_*.wasm; do
  [ -e "$wasm" ] || continue
  plugin=$(basename "$wasm" .wasm); plugin=${plugin#meshguard_}
  image="$registry/meshguard-$plugin:$tag"
  docker build -f "$root/envoy/istio/oci/Dockerfile" --build-arg PLUGIN="$plugin" -t "$image" "$modules"
  docker push "$image"
  echo "$image sha256=$(sha256sum "$wasm" | cut -d' ' -f1)"
  found=1
done
[ "$found" = 1 ] || { echo "no plugins in $modules: run scripts/build first" >&2; exit 1; }
