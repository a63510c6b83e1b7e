# Multi-stage build of the one static meterlink binary; every compose service runs it.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/meterlink ./cmd/meterlink

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/meterlink /usr/local/bin/meterlink
WORKDIR /data
ENTRYPOINT ["/usr/local/bin/meterlink"]
