#!/usr/bin/env bash
# Build kubensage-agent, kubensage-relay and kubensage-advisor for one Linux architecture
# with PyInstaller.
#   scripts/build.sh PYTHON VERSION ARCH
# Output (one-dir bundles, see README "Binaries"):
#   dist/kubensage-{agent,relay,advisor}-VERSION-linux-ARCH/kubensage-{agent,relay,advisor}
#   and .tar.gz of each
# A foreign ARCH is built in a container with emulation when `docker buildx` can run it;
# otherwise the build stops with what is missing. Every executable's ELF machine is checked.
set -euo pipefail
PYTHON="$1"; VERSION="$2"; ARCH="$3"
cd "$(dirname "$0")/.."

case "$(uname -m)" in
  x86_64) HOST_ARCH=amd64 ;;
  aarch64|arm64) HOST_ARCH=arm64 ;;
  *) HOST_ARCH="$(uname -m)" ;;
esac
case "$ARCH" in
  amd64) PLATFORM=linux/amd64; QEMU=qemu-x86_64 ;;
  arm64) PLATFORM=linux/arm64; QEMU=qemu-aarch64 ;;
  *) echo "unsupported ARCH $ARCH (amd64 or arm64)" >&2; exit 2 ;;
esac

if [ "$ARCH" != "$HOST_ARCH" ]; then
  if docker buildx version >/dev/null 2>&1 && docker info >/dev/null 2>&1 \
     && [ -e "/proc/sys/fs/binfmt_misc/$QEMU" ]; then
    echo "building $ARCH on $HOST_ARCH in a $PLATFORM container (emulated)"
    docker buildx build --platform "$PLATFORM" -f deploy/Dockerfile.build \
      --build-arg VERSION="$VERSION" --output "type=local,dest=dist" .
    exec "$PYTHON" scripts/check_elf.py "$ARCH" dist/kubensage-*-"$VERSION"-linux-"$ARCH"/kubensage-*
  fi
  cat >&2 <<MSG
cannot build linux-$ARCH on this $HOST_ARCH host: a cross build needs a running Docker
engine with buildx and QEMU binfmt for $PLATFORM (e.g. apt-get install docker.io
docker-buildx qemu-user-static binfmt-support), or a native $ARCH machine.
MSG
  exit 2
fi

COMMIT="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then COMMIT="$COMMIT-dirty"; fi
BUILD_DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
INFO=kubensage_common/_build_info.py
trap 'rm -f "$INFO"' EXIT
printf '"""Written by scripts/build.sh; not in version control."""\n\nVERSION = "%s"\nCOMMIT = "%s"\nBUILD_DATE = "%s"\n' \
  "$VERSION" "$COMMIT" "$BUILD_DATE" > "$INFO"

mkdir -p build/pyinstaller dist
for program in agent relay advisor; do
  name="kubensage-$program-$VERSION-linux-$ARCH"
  # Never in any bundle: build-time packages (protoc, setuptools) and the test and lint tools
  # the dev venv carries, which optional imports would otherwise pull in (pydantic's mypy
  # plugin brings mypy and, through it, psutil; hypothesis, jsonschema via kubernetes-validate).
  excludes=(--exclude-module grpc_tools --exclude-module setuptools --exclude-module pkg_resources
            --exclude-module pip --exclude-module wheel
            --exclude-module mypy --exclude-module mypy_protobuf --exclude-module psutil
            --exclude-module hypothesis --exclude-module pytest --exclude-module _pytest
            --exclude-module kubernetes_validate --exclude-module jsonschema
            --exclude-module PyInstaller --exclude-module promql_parser
            --exclude-module grafana_foundation_sdk)
  # The agent talks to no Kubernetes API and serves no client_python registry, and speaks
  # gRPC with its own client (kubensage_agent/wire), not grpcio; it loads Python's ssl only
  # for TLS to the relay, and never OpenSSL's hashes (hashlib falls back to its built-in
  # ones); nor lzma, bz2, libuuid, the C decimal or the CJK codecs (their stdlib users fall
  # back without them, or are never reached), nor XML (only multiprocessing's XML-RPC
  # listener would); PyYAML's optional C loader is not used (yaml.safe_load).
  [ "$program" = agent ] && excludes+=(--exclude-module kubernetes --exclude-module prometheus_client
                                       --exclude-module grpc --exclude-module _hashlib
                                       --exclude-module lzma --exclude-module _lzma
                                       --exclude-module bz2 --exclude-module _bz2
                                       --exclude-module _uuid --exclude-module _decimal
                                       --exclude-module _multibytecodec --exclude-module _codecs_cn
                                       --exclude-module _codecs_hk --exclude-module _codecs_iso2022
                                       --exclude-module _codecs_jp --exclude-module _codecs_kr
                                       --exclude-module _codecs_tw
                                       --exclude-module xml --exclude-module xmlrpc
                                       --exclude-module pyexpat
                                       --exclude-module yaml._yaml --exclude-module _yaml)
  # click's --version of the relay and the advisor looks their version up in the package
  # metadata; the agent passes its own and reads no metadata
  [ "$program" != agent ] && excludes+=(--copy-metadata kubensage)
  rm -rf "dist/$name" "dist/$name.tar.gz"
  # --strip: symbols of the bundled libraries are never used at run time (~1/3 of their size)
  "$PYTHON" -m PyInstaller --noconfirm --onedir --strip --log-level WARN \
    --name "kubensage-$program" --paths . --hidden-import kubensage_common._build_info \
    "${excludes[@]}" \
    --distpath "build/pyinstaller/dist-$ARCH" --workpath "build/pyinstaller/work-$ARCH" \
    --specpath build/pyinstaller "scripts/entry_$program.py"
  mv "build/pyinstaller/dist-$ARCH/kubensage-$program" "dist/$name"
  tar -C dist -cf - "$name" | gzip -9 > "dist/$name.tar.gz"
  echo "built dist/$name/kubensage-$program ($(du -sh "dist/$name" | cut -f1))"
done
"$PYTHON" scripts/check_elf.py "$ARCH" dist/kubensage-*-"$VERSION"-linux-"$ARCH"/kubensage-*
