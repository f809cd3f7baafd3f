# The klambda gateway in cluster mode (Invoke API on 8080, agents' gRPC on 50051).
#   docker build -f images/gateway.Dockerfile -t ghcr.io/klambda/gateway:0.1.0 .
# The chart runs it with command ["python", "-m", "klambda_gateway.k8s_scaler"] as UID 10001
# and mounts the async store's PersistentVolume at /var/lib/klambda.
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
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && mkdir -p /var/lib/klambda && chown 10001:10001 /var/lib/klambda
USER 10001:10001
ENV PYTHONUNBUFFERED=1 KLAMBDA_STATE_DIR=/var/lib/klambda
VOLUME /var/lib/klambda
EXPOSE 8080 50051
CMD ["python", "-m", "klambda_gateway.k8s_scaler"]
