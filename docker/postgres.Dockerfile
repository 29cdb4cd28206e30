# PostgreSQL for the docker backend where no registry answers: Debian's postgresql on
# the debootstrap base (build-images.sh), honouring the public postgres image's contract:
# POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB / POSTGRES_HOST_AUTH_METHOD, PGDATA,
# and arguments that start with "-" go to postgres.
ARG BASE=sessionstorm/debian:bookworm
FROM ${BASE}
LABEL sessionstorm.image=postgres
ENV PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
