# One Dockerfile, one image per service: the build argument TWIN_EXTRAS picks which extras of
# pyproject.toml are installed (docs/DESIGN.md "Packaging"), at the versions of requirements.txt.
#
#   docker build --build-arg TWIN_EXTRAS=api,postgres -t twinlib-api .        # REST API only:
#                                                   # no JupyterLab, Voilà, scikit-learn, XGBoost
#   docker build --build-arg TWIN_EXTRAS=dashboard,postgres -t twinlib-dashboard .
#   docker build -t twinlib .                       # everything (TWIN_EXTRAS=all): init, monitor, lab
#
# docker-compose.yml builds the three. Behind a TLS-inspecting proxy add the corporate root CA:
# a *.crt file in docker/ca-certificates/, or --build-arg EXTRA_CA_CERTS="$(cat corp-ca.crt)"
# (see docker/ca-certificates/README.md).
FROM python:3.13-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TWIN_DATA_DIR=/var/lib/twin/data \
    TWIN_DB=/var/lib/twin/data/twin.db \
    TWIN_MODELS_DIR=/var/lib/twin/models \
    TWIN_REPORTS_DIR=/var/lib/twin/reports

# Corporate CA certificates first, so every download below trusts the proxy: the system store
# (update-ca-certificates), which pip (PIP_CERT) and Python's ssl (SSL_CERT_FILE) then use.
ARG EXTRA_CA_CERTS=""
COPY docker/ca-certificates/ /usr/local/share/ca-certificates/twin/
RUN set -e; \
    cd /usr/local/share/ca-certificates/twin; \
    if [ -n "$EXTRA_CA_CERTS" ]; then printf '%s\n' "$EXTRA_CA_CERTS" > build-arg.crt; fi; \
    find . -type f ! -name '*.crt' -delete; \
    update-ca-certificates
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

WORKDIR /app

# The dependencies of the chosen extras, pinned by requirements.txt (used as constraints, so only
# what the extras need is installed). This layer is rebuilt only when these files change: the
# package itself is a placeholder here and comes with the sources below.
ARG TWIN_EXTRAS=all
COPY requirements.txt pyproject.toml README.md LICENSE ./
RUN set -e; \
    python -m pip install --upgrade pip; \
    sed -e 's/\[[^]]*\]==/==/' requirements.txt > /tmp/constraints.txt; \
    mkdir twinlib && touch twinlib/__init__.py; \
    python -m pip install -c /tmp/constraints.txt ".[${TWIN_EXTRAS}]"; \
    python -m pip uninstall -y twinlib; \
    rm -rf twinlib build /tmp/constraints.txt

COPY twinlib ./twinlib
COPY notebooks ./notebooks
COPY benchmarks ./benchmarks
# Editable: `twin dashboard` serves /app/notebooks/dashboard.ipynb beside the package. --no-deps:
# the dependencies are the pinned ones above.
RUN python -m pip install --no-deps -e . \
 && useradd --create-home --uid 10001 --shell /usr/sbin/nologin twin \
 && mkdir -p /var/lib/twin/data /var/lib/twin/models /var/lib/twin/reports \
 && chown -R twin:twin /var/lib/twin /app/notebooks

# Data, models and reports live on the shared volume (owned by the non-root user, so a fresh
# named volume inherits that ownership). Settings: mount a twin.toml and set TWIN_SETTINGS to it
# (docker-compose.yml reads /var/lib/twin/twin.toml, or ./twin.toml with the override shown there).
VOLUME ["/var/lib/twin"]
USER twin
EXPOSE 5000 8050 8888

CMD ["twin", "up", "--host", "0.0.0.0"]
