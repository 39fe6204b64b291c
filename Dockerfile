# The baton binary on a small Debian base (exec handlers usually want a shell;
# curl is for the healthchecks in docker-compose.yml, and for handlers).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/baton ./cmd/baton

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/baton /usr/local/bin/baton
COPY examples /etc/baton/examples
USER nobody
ENTRYPOINT ["baton"]
