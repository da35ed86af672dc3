# syntax=docker/dockerfile:1.7
# The project's CUDA image: every DVC node can run in it (python -m capcurriculum.container run -- ...).
#
#   docker build -t capcurriculum:gpu-$(git rev-parse --short HEAD) .
#
# Versions hang together from TRL and vLLM down: TRL 1.16 supports vLLM 0.22-0.31 (the paper profile's
# rollout is TRL's vLLM colocate), and vllm 0.31.0 (CUDA) pins torch==2.13.0, the project's own
# torch pin; PyPI's torch 2.13.0 is built against CUDA 13.0 (nvidia-cuda-runtime 13.0.96, cuDNN 9 for
# cu13), hence CUDA 13.0.2 images on Ubuntu 24.04, whose system Python is 3.12. Hosts need an NVIDIA
# driver that supports CUDA 13.0 (>= 580).
#
# flash-attn is opt-in (--build-arg WITH_FLASH_ATTN=1): the paper profile attends with SDPA
# (train.attn_implementation: sdpa), vLLM brings its own attention kernels, and flash-attn 2.8.3.post2 has
# no wheel on PyPI while its source build against CUDA 13 fails for others (Dao-AILab/flash-attention#2064).
# When asked, it is compiled against this torch for the GPU generations in FLASH_ATTN_CUDA_ARCHS (80 = A100,
# 90 = H100/H200); MAX_JOBS bounds the parallel nvcc jobs, each of which can take several GB of RAM. Then
# set train.attn_implementation=flash_attention_2.
#
# RUNTIME_BASE: the default has no nvcc. The repository's DeepSpeed configs need no op compiled at run time
# (the stage builds its own torch AdamW, nothing is offloaded: tests/test_deepspeed_configs.py holds them to
# that). Pass the matching -cudnn-devel- image if some kernel must be JIT-compiled (a DeepSpeed "optimizer"
# block such as FusedAdam or CPU offload's DeepSpeedCPUAdam; FlashInfer without prebuilt cubins).

ARG RUNTIME_BASE=nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04

# ---- builder: installs everything into /opt/venv (and compiles flash-attn when asked) --------------------------
FROM nvidia/cuda:13.0.2-cudnn-devel-ubuntu24.04 AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Unpinned apt packages on purpose: the base image tag fixes the Ubuntu snapshot, and Ubuntu drops
# superseded versions from its archive, so exact pins would break the build within weeks.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.12 python3.12-dev python3.12-venv git \
    && rm -rf /var/lib/apt/lists/*

# uv, not pip, resolves the set (as in the Makefile); it is itself installed into the venv so the
# devcontainer can use it for the editable install.
# Bytecode compiled at install: the runtime user cannot write __pycache__ under /opt/venv, and every
# process would otherwise recompile torch's and transformers' sources (the Makefile's note).
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1 \
    UV_PYTHON_DOWNLOADS=never
RUN python3.12 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir uv==0.9.30

# flash-attn's setup.py imports torch, so torch and its build tools come first and flash-attn is built
# without isolation against exactly this torch.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv pip install torch==2.13.0 torchvision==0.28.0 setuptools==80.9.0 wheel==0.45.1 \
        ninja==1.13.0 packaging==25.0 psutil==7.1.3 einops==0.8.1

WORKDIR /build
# Dependencies before sources: this (slow) layer is rebuilt when pyproject.toml changes, not on every
# edit under src/.
COPY pyproject.toml ./
ARG WITH_FLASH_ATTN=0
ARG FLASH_ATTN_CUDA_ARCHS="80;90"
ARG MAX_JOBS=4
RUN --mount=type=cache,target=/root/.cache/uv \
    if [ "${WITH_FLASH_ATTN}" = 1 ]; then set -- --extra flash; fi; \
    FLASH_ATTN_CUDA_ARCHS="${FLASH_ATTN_CUDA_ARCHS}" MAX_JOBS="${MAX_JOBS}" \
    uv pip install --no-build-isolation-package flash-attn -r pyproject.toml --extra gpu "$@"

COPY README.md ./
COPY src ./src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv pip install --no-deps . \
    && python -c "import torch, torchvision, vllm, deepspeed, trl, capcurriculum" \
    && if [ "${WITH_FLASH_ATTN}" = 1 ]; then python -c "import flash_attn"; fi

# ---- runtime ----------------------------------------------------------------------------------------
FROM ${RUNTIME_BASE}
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# gcc and the Python headers: Triton (torch.compile, vLLM) compiles small launchers at run time.
# git: DVC and MLflow's source tracking in the devcontainer. Unpinned for the reason given above.
# The base image's `ubuntu` user holds uid 1000; the project user takes it, as host users usually
# have 1000 too (devcontainers remap it to the host uid). The HF cache directory exists in the image
# so that a named volume mounted there (devcontainer) starts out owned by that user.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.12 python3.12-dev gcc libc6-dev git ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && userdel --remove ubuntu \
    && useradd --create-home --uid 1000 --user-group --shell /bin/bash capcurriculum \
    && install -d -o capcurriculum -g capcurriculum /home/capcurriculum/.cache/huggingface

COPY --from=builder --chown=1000:1000 /opt/venv /opt/venv

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    UV_PYTHON_DOWNLOADS=never \
    HF_HOME=/tmp/hf-home

USER 1000:1000
WORKDIR /workspace
CMD ["python", "-m", "capcurriculum.container", "image-id"]
