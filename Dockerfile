# ncib on a GPU node (docs/cluster.md, "Containers"):
#   docker build -t ncib .
#   docker run --rm --init --gpus all --ipc=host -e WANDB_API_KEY \
#     -v "$PWD/outputs:/workspace/outputs" -v /shared/datasets:/data ncib dataset=cifar10
#
# The base is plain Python: PyTorch's wheels bring their own CUDA runtime, cuDNN and NCCL (and
# Triton its own ptxas); the node's NVIDIA driver comes in with --gpus all (Apptainer: --nv).
# torch.compile, on by default on CUDA (conf/model/supcon.yaml), needs a C compiler and the
# Python headers for Triton's launchers: gcc is installed below, the headers ship with this base.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

# the torch/torchvision pair CI tests; the project allows torch>=2.4,<2.15 (pyproject.toml).
# PyPI's wheels are built for CUDA 13.0 (NVIDIA driver >= 580); for an older driver pass
# --build-arg TORCH_INDEX_URL=<PyTorch's wheel index for your CUDA, e.g. its cu126 index>
ARG TORCH_VERSION=2.14.1
ARG TORCHVISION_VERSION=0.29.1
ARG TORCH_INDEX_URL=

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

# dependency layers: rebuilt when the torch pin or pyproject.toml changes, not on a code edit
RUN python3 -m venv "$VIRTUAL_ENV" \
    && pip install --no-cache-dir setuptools==80.9.0 wheel==0.46.3 \
    && if [ -n "$TORCH_INDEX_URL" ]; then export PIP_INDEX_URL="$TORCH_INDEX_URL"; fi \
    && pip install --no-cache-dir "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
COPY pyproject.toml /tmp/ncib/pyproject.toml
RUN python -c "import tomllib; print(*tomllib.load(open('/tmp/ncib/pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
       > /tmp/ncib/requirements.txt \
    && pip install --no-cache-dir -r /tmp/ncib/requirements.txt \
       "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"

# the code: a regular install (the configuration ships inside the package as ncib.conf)
COPY README.md /tmp/ncib/README.md
COPY ncib /tmp/ncib/ncib
COPY conf /tmp/ncib/conf
RUN pip install --no-cache-dir --no-deps --no-build-isolation /tmp/ncib \
    && rm -rf /tmp/ncib

# a non-root user (ncib, uid 1000); HOME and the work folder are writable by any uid, so that
# `docker run --user "$(id -u):$(id -g)"` can write caches (W&B, Triton, matplotlib) and outputs
COPY containers/entrypoint.sh /usr/local/bin/ncib-entrypoint
RUN useradd --create-home --uid 1000 --shell /bin/bash ncib \
    && mkdir -p /workspace /data \
    && chmod 1777 /home/ncib /workspace \
    && chmod 0755 /usr/local/bin/ncib-entrypoint
USER 1000
ENV HOME=/home/ncib \
    NCIB_DATA_DIR=/data
WORKDIR /workspace

# `docker run ncib <overrides>` trains (python -m ncib.run); a first word run, analyse, report or
# linear_eval runs that command; any other program runs as given (python, bash, ncib); no
# argument: the README's first run (digits, a few minutes)
ENTRYPOINT ["ncib-entrypoint"]
CMD ["run"]
