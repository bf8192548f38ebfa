# The billing image: one image for every process (migrate, scheduler, worker, admin,
# callbacks, sandbox); docker-compose.yml picks the command. Runs as a non-root user.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY billing ./billing
COPY workers ./workers
COPY config ./config
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin billing \
    && mkdir -p /tmp/dramatiq-prometheus \
    && chown billing /tmp/dramatiq-prometheus
USER billing
CMD ["billing", "--help"]
