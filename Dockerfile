FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY billing ./billing
COPY workers ./workers
COPY config ./config
RUN pip install --no-cache-dir .
CMD ["billing", "--help"]
