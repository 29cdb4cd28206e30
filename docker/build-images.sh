#!/usr/bin/env bash
# Builds, without pulling anything, the images the docker backend needs on a machine
# that cannot reach a registry:
#   sessionstorm/debian:bookworm   a root filesystem from debootstrap (Debian's postgresql,
#                                  redis-server, python3), turned into an image by `docker import`
#   sessionstorm/postgres:offline  postgres.Dockerfile on it (the postgres image's env contract)
#   sessionstorm/redis:offline     redis.Dockerfile on it
#   sessionstorm/app:dev           sessionstorm.Dockerfile on it (stub provider + reference target)
# The base is made once; the builds reuse Docker's layer cache, so a second run on the
# same machine takes seconds. The images a rebuild replaced are pruned (ours only, by label).
# Prints the env that points the docker backend at these images (see docker/offline.env).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
suite=${SESSIONSTORM_DEBIAN_SUITE:-bookworm}
mirror=${SESSIONSTORM_DEBIAN_MIRROR:-$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1 || true)}
mirror=${mirror:-http://deb.debian.org/debian}
base=sessionstorm/debian:$suite
say() { echo "build-images: $*" >&2; }
have() { docker image inspect "$1" >/dev/null 2>&1; }

command -v docker >/dev/null || { say "docker: not found; run docker/engine.sh first"; exit 2; }
docker info >/dev/null 2>&1 || { say "docker: no engine answers; run docker/engine.sh first"; exit 2; }

if ! have "$base"; then
  if ! command -v debootstrap >/dev/null; then
    [ "$(id -u)" -eq 0 ] || { say "debootstrap: not found; sudo apt-get install debootstrap, or set SESSIONSTORM_DOCKER=skip"; exit 2; }
    say "installing debootstrap (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  fi
  rootfs=$(mktemp -d /var/tmp/sessionstorm-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs"' EXIT
  say "debootstrap $suite from $mirror into $rootfs (a few minutes, once)"
  debootstrap --variant=minbase \
    --include=python3,python3-venv,postgresql,redis-server,ca-certificates,procps \
    "$suite" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || { tail -20 "$rootfs.log" >&2; exit 1; }
  rm -f "$rootfs.log"
  chroot "$rootfs" apt-get clean
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/lib/postgresql/*/main  # entrypoints init their own data
  pgbin=$(ls -d "$rootfs"/usr/lib/postgresql/*/bin | head -1)  # 15 on bookworm
  tar -C "$rootfs" -c . | docker import \
    --change "ENV LANG=C.UTF-8 PATH=${pgbin#"$rootfs"}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change 'CMD ["bash"]' - "$base" >/dev/null
  rm -rf --one-file-system "$rootfs"
  trap - EXIT
  say "imported $base"
fi

build() {  # image dockerfile context [build-arg...]
  local image=$1 file=$2 context=$3 log
  shift 3
  say "docker build $image"
  log=$(mktemp)
  docker build --force-rm --network host --build-arg "BASE=$base" "$@" -f "$file" -t "$image" "$context" >"$log" 2>&1 \
    || { grep -v -i -e deprecated -e buildx -e buildkit "$log" | tail -25 >&2; rm -f "$log"; exit 1; }
  rm -f "$log"
}
build sessionstorm/postgres:offline "$here/postgres.Dockerfile" "$here"
build sessionstorm/redis:offline "$here/redis.Dockerfile" "$here"
# The app's wheels come from the host's pip (its index, cache and certificates): the build
# itself then needs no network.
py=$root/.venv/bin/python
[ -x "$py" ] || py=python3
# Compiled wheels must suit the image's Python (Debian's: 3.11 on bookworm).
want=$(docker run --rm --network host "$base" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
have_py=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$want" = "$have_py" ] || { say "python: $py is $have_py, the image's is $want; run this with a $want venv (.venv), or set SESSIONSTORM_DOCKER=skip"; exit 2; }
say "pip wheel sessionstorm and its dependencies into docker/wheels"
mkdir -p "$here/wheels"
# (async-timeout: redis needs it on Debian's Python 3.11.2, not on the host's newer one)
log=$(mktemp)
"$py" -m pip wheel -q --wheel-dir "$here/wheels" "$root" setuptools async-timeout >"$log" 2>&1 \
  || { grep -v "is ignored: it is neither" "$log" | tail -25 >&2; rm -f "$log"; exit 1; }
rm -f "$log"
build sessionstorm/app:dev "$here/sessionstorm.Dockerfile" "$root" --build-arg PIP_NO_INDEX=1
docker image prune -f --filter label=sessionstorm.image >/dev/null
cat "$here/offline.env"
