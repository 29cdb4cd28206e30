# PostgreSQL for the docker backend where no registry answers: Debian's postgresql on
# the debootstrap base (build-images.sh), honouring the public postgres image's contract:
# POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB / POSTGRES_HOST_AUTH_METHOD, PGDATA,
# and arguments that start with "-" go to postgres.
ARG BASE=sessionstorm/debian:bookworm
FROM ${BASE}
LABEL sessionstorm.image=postgres
ENV PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
# PGDATA initialised at build time for the settings the docker backend starts it with
# (sessionstorm/stack/docker.py: user postgres, its fixed test password, trust), so its
# containers skip initdb; a container with other settings runs initdb as before.
ARG BAKE_USER=postgres
ARG BAKE_PASSWORD=sessionstorm
ARG BAKE_AUTH=trust
RUN POSTGRES_USER=$BAKE_USER POSTGRES_PASSWORD=$BAKE_PASSWORD POSTGRES_HOST_AUTH_METHOD=$BAKE_AUTH \
    docker-entrypoint.sh bake
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
