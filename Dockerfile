# One image for every twinlib service (init, monitor, api, dashboard, lab): see docker-compose.yml.
FROM python:3.13-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TWIN_DATA_DIR=/var/lib/twin/data \
    TWIN_DB=/var/lib/twin/data/twin.db \
    TWIN_MODELS_DIR=/var/lib/twin/models \
    TWIN_REPORTS_DIR=/var/lib/twin/reports

WORKDIR /app

# Pinned dependencies first: this layer is rebuilt only when requirements.txt changes.
COPY requirements.txt ./
RUN python -m pip install --upgrade pip \
 && python -m pip install -r requirements.txt

COPY pyproject.toml README.md ./
COPY twinlib ./twinlib
COPY notebooks ./notebooks
COPY benchmarks ./benchmarks
# Editable: `twin dashboard` serves /app/notebooks/dashboard.ipynb beside the package.
RUN python -m pip install --no-deps -e . \
 && useradd --create-home --uid 10001 --shell /usr/sbin/nologin twin \
 && mkdir -p /var/lib/twin/data /var/lib/twin/models /var/lib/twin/reports \
 && chown -R twin:twin /var/lib/twin /app/notebooks

# Data, models and reports live on the shared volume (owned by the non-root user, so a fresh
# named volume inherits that ownership).
VOLUME ["/var/lib/twin"]
USER twin
EXPOSE 5000 8050 8888

CMD ["twin", "up", "--host", "0.0.0.0"]
