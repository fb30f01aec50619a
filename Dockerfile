# medvlp container image: medvlpd (the daemon) and medvlp (the CLI) on Debian 12.
#
#   docker build -t medvlp --build-arg REVISION="$(git rev-parse HEAD)" \
#                --build-arg SOURCE_URL="$(git remote get-url origin)" .
#   docker run --rm -p 127.0.0.1:8080:8080 -v "$PWD/weights/biomedclip:/weights:ro" \
#              -v medvlp-index:/index medvlp
#
# Two stages: `build` compiles with the same meson options as a release build here; `runtime` holds
# only the shared libraries the binaries load (scripts/docker-check proves the list with ldd + dpkg),
# the binaries and a tiny health probe. Model weights and indexes are never baked in: they are
# volumes, so one image serves every model and an index outlives the container.
#
# The base is pinned to a Debian point release. For bit-for-bit rebuilds also pin the digest:
# `docker buildx imagetools inspect debian:12.11-slim` and append @sha256:... to both FROM lines.

ARG DEBIAN_IMAGE=debian:12.11-slim

FROM ${DEBIAN_IMAGE} AS build
# scripts/setup is the one list of build dependencies (the same one CI and developers use).
WORKDIR /src
COPY scripts/setup scripts/setup
RUN scripts/setup && rm -rf /var/lib/apt/lists/*
COPY . .
# x86-64-v2 keeps the image portable to any x86-64 host since ~2009; OpenBLAS still picks its
# kernels (AVX2/AVX-512) at run time, so the GEMMs lose nothing.
ARG MARCH=x86-64-v2
RUN meson setup build --buildtype=release -Dmarch=${MARCH} && ninja -C build
RUN meson test -C build --print-errorlogs --no-suite deploy

FROM ${DEBIAN_IMAGE} AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE_URL=unknown
LABEL org.opencontainers.image.title="medvlp" \
      org.opencontainers.image.description="Biomedical vision-language embeddings (BiomedCLIP, CXR-BERT, GLoRIA, ConVIRT, MedCLIP) and FAISS retrieval over HTTP" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="docker.io/library/debian:12.11-slim"
# Runtime libraries only (no -dev packages). libopenblas0-pthread also provides liblapack.so.3
# (through Debian's alternatives), so no separate liblapack3. FAISS is linked statically but is C++,
# hence libstdc++6; libssl3 provides libcrypto (model checksums in `medvlp info`).
# scripts/docker-check fails if a library is missing here or a package is unused.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libmicrohttpd12 libjansson4 libopenblas0-pthread libjpeg62-turbo libpng16-16 \
      libutf8proc2 libgomp1 libmsgpackc2 libstdc++6 libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin medvlp \
 && mkdir -p /weights /index \
 && chown medvlp:medvlp /index
COPY --from=build /src/build/medvlpd /src/build/medvlp /usr/local/bin/
COPY deploy/healthcheck /usr/local/bin/medvlp-healthcheck

# Inside the container 127.0.0.1 is the container's own loopback: Docker's published ports arrive on
# the container's eth0, so the daemon must listen on all of the container's interfaces. Exposure to
# the outside is decided by `-p` (publish on 127.0.0.1 or behind the proxy), not by this address.
ENV MEDVLP_LISTEN=0.0.0.0:8080 \
    MEDVLP_MODEL=/weights \
    MEDVLP_INDEX=/index \
    MEDVLP_LOG_FORMAT=json
VOLUME ["/weights", "/index"]
EXPOSE 8080
USER medvlp:medvlp
# /healthz (liveness), not /readyz: a container that is still loading a large model is healthy.
# The probe is bash's /dev/tcp, so the image needs no curl. start-period covers model loading.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["/usr/local/bin/medvlp-healthcheck"]
# Exec form: medvlpd is PID 1 and receives SIGTERM itself (it drains, persists and exits 0).
# A shell-form ENTRYPOINT would put /bin/sh in between, which does not forward the signal.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/medvlpd"]
CMD []
