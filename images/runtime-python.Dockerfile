# Base image of function pods: the klambda agent + built-in Python runtime (and awslambdaric).
#   docker build -f images/runtime-python.Dockerfile -t ghcr.io/klambda/runtime-python:0.1.0 .
#   docker build -f images/runtime-python.Dockerfile --build-arg PYTHON=3.11 \
#       -t ghcr.io/klambda/runtime-python:0.1.0-py3.11 .
# The operator's Deployments run ["python", "-m", "klambda_runtime.agent"] as UID 1000 with
# a read-only root filesystem: code is mounted at /var/task, layers at /opt, /tmp is an
# emptyDir. The same image runs the init step `python -m klambda_operator.fetch` (URL code).
ARG PYTHON=3.12
FROM python:${PYTHON}-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY model model
COPY proto proto
COPY runtime runtime
COPY gateway gateway
COPY operator operator
COPY cli cli
RUN pip wheel --no-cache-dir --wheel-dir /wheels . awslambdaric

FROM python:${PYTHON}-slim
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && mkdir -p /var/task /opt && chown 1000:1000 /var/task
ENV PYTHONUNBUFFERED=1 LAMBDA_TASK_ROOT=/var/task
WORKDIR /var/task
USER 1000:1000
CMD ["python", "-m", "klambda_runtime.agent"]
