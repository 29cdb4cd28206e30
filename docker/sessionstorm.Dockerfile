# The stub provider and the reference target: one image, two commands.
#   docker build -f docker/sessionstorm.Dockerfile -t sessionstorm/app:dev .
#   docker run --network host sessionstorm/app:dev                     (stub provider, :8000)
#   docker run --network host sessionstorm/app:dev python -m sessionstorm.target serve
# BASE is the public python:3.11-slim; build-images.sh passes its debootstrap image and
# fills docker/wheels/ first, so nothing is fetched inside the build (PIP_NO_INDEX=1).
ARG BASE=python:3.11-slim
FROM ${BASE}
LABEL sessionstorm.image=app
ARG PIP_NO_INDEX=0
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 VIRTUAL_ENV=/opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN python3 -m venv /opt/venv
# Dependencies first, from pyproject alone, so a source change rebuilds only the last layer.
COPY docker/wheels/ /wheels/
COPY pyproject.toml README.md /src/
RUN mkdir -p /src/src/sessionstorm && touch /src/src/sessionstorm/__init__.py \
 && pip install --no-cache-dir --find-links /wheels /src && pip uninstall -y -q sessionstorm
COPY src /src/src
RUN pip install --no-cache-dir --no-deps --find-links /wheels /src && rm -rf /src /wheels
USER nobody
CMD ["python", "-m", "sessionstorm.provider", "--host", "127.0.0.1", "--port", "8000"]
