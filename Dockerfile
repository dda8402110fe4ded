# The proofrecon worker image (docker-compose.yml builds it): the wheel, and nothing else of the
# checkout (no dev kit, tests or benchmarks).
FROM python:3.11-slim AS wheel
WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml constraints.txt README.md ./
COPY streams ./streams
COPY sinks ./sinks
RUN pip wheel --no-deps -w /wheels .

FROM python:3.11-slim
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
COPY constraints.txt /tmp/constraints.txt
COPY --from=wheel /wheels /wheels
RUN pip install --no-cache-dir -c /tmp/constraints.txt /wheels/*.whl && rm -rf /wheels
WORKDIR /app
ENV PROOFRECON_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 6066
# Bound beyond loopback (PROOFRECON_WEB_HOST=0.0.0.0, as in docker-compose.yml) the worker also
# needs PROOFRECON_WEB_AUTH_TOKEN: it refuses to start without one.
CMD ["sh", "-c", "proofrecon topics create && proofrecon worker"]
