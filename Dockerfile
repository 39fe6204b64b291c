# The baton binary on a small Debian base (exec handlers usually want a shell;
# curl is for the healthchecks in docker-compose.yml, and for handlers).
#
# The base images are pinned by digest, so a build today and one next month
# start from the same bytes; bump a digest on purpose (docker buildx imagetools
# inspect golang:1.26-bookworm) and note it in CHANGELOG.md.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg REVISION=$(git rev-parse HEAD) -t baton .
ARG GO_IMAGE=golang:1.26-bookworm@sha256:a688600ca24f8a4d3ca77f95b0dd40704a9fc787c826660eb7ba0b641b8b175d
ARG BASE_IMAGE=debian:bookworm-slim@sha256:4b50eb66f977b4062683ff434ef18ac191da862dbe966961bc11990cf5791a8d

FROM ${GO_IMAGE} AS build
ARG VERSION=
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags "-s -w -X main.version=${VERSION}" -o /out/baton ./cmd/baton

FROM ${BASE_IMAGE}
ARG VERSION=
ARG REVISION=
LABEL org.opencontainers.image.title="baton" \
      org.opencontainers.image.description="A Postgres-centric job runner: REST API, workers and SQL reports" \
      org.opencontainers.image.source="https://github.com/baton-run/baton" \
      org.opencontainers.image.url="https://github.com/baton-run/baton" \
      org.opencontainers.image.documentation="https://github.com/baton-run/baton/tree/main/docs" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/baton /usr/local/bin/baton
COPY LICENSE /usr/share/doc/baton/LICENSE
COPY examples /etc/baton/examples
USER nobody
ENTRYPOINT ["baton"]
