# The klambda operator (Kopf). Build from the repository root:
#   docker build -f images/operator.Dockerfile -t ghcr.io/klambda/operator:0.1.0 .
# The chart runs it with command ["python", "-m", "klambda_operator"] as UID 10001.
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY model model
COPY proto proto
COPY runtime runtime
COPY gateway gateway
COPY operator operator
COPY cli cli
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[operator]"

FROM python:3.12-slim
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 10001:10001
ENV PYTHONUNBUFFERED=1
EXPOSE 8080
CMD ["python", "-m", "klambda_operator"]
