# The proofrecon worker image (docker-compose.yml builds it).
FROM python:3.11-slim
WORKDIR /app
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
COPY pyproject.toml constraints.txt README.md ./
COPY streams ./streams
COPY sinks ./sinks
RUN pip install --no-cache-dir -c constraints.txt .
ENV PROOFRECON_DATA_DIR=/data PROOFRECON_WEB_HOST=0.0.0.0
VOLUME ["/data"]
EXPOSE 6066
CMD ["sh", "-c", "proofrecon topics create && proofrecon worker"]
