# Redis for the docker backend where no registry answers: Debian's redis-server on the
# debootstrap base (build-images.sh). Like the public redis image, the command is
# `redis-server ARGS...` and the server runs as the redis user.
ARG BASE=sessionstorm/debian:bookworm
FROM ${BASE}
LABEL sessionstorm.image=redis
USER redis
WORKDIR /tmp
CMD ["redis-server", "--protected-mode", "no"]
