#!/usr/bin/env bash
# The image's entry point (Dockerfile, apptainer.def): one image, every ncib command.
#   <image> dataset=cifar10 ...         python -m ncib.run dataset=cifar10 ...  (overrides, -m, --cfg)
#   <image> run|analyse|report|linear_eval ARGS...   python -m ncib.<command> ARGS...
#   <image> python|bash|ncib|... ARGS...             that program, as given
set -euo pipefail

case "${1:-run}" in
  run | analyse | report | linear_eval)
    command="${1:-run}"
    shift || true
    exec python -m "ncib.${command}" "$@"
    ;;
  -* | *=* | '~'*)
    # Hydra's overrides and flags (key=value, +key=value, ~key, -m, --cfg job) go to ncib.run
    exec python -m ncib.run "$@"
    ;;
  *)
    exec "$@"
    ;;
esac
