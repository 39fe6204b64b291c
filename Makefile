# Baton. `make run` runs the example pipeline; `make test` runs the tests.
SHELL := /bin/bash
SQLC_VERSION := v1.31.1
STATICCHECK_VERSION := v0.7.0
REDOCLY_VERSION := 2.77.0
SPECTRAL_VERSION := 6.16.3
GOBIN := $(shell go env GOPATH)/bin

.PHONY: run stop demo test chaos chaos-short bench-pressure build release install generate check tools help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

run: build ## the quick start: migrate, then the API and a worker on examples/pipeline.yaml (prints a curl)
	@scripts/dev.sh

stop: ## stop the project-local PostgreSQL that make run started where nothing answered on 5432 (its data stays in .baton/)
	@. scripts/postgres.sh && stop_local_cluster $${BATON_DEV_DIR:-.baton}

demo: build ## a CLI walkthrough: start a worker, submit jobs, show them move through both stages
	@scripts/run-example.sh

test: ## run the tests against a real PostgreSQL (started or created if needed)
	@scripts/test.sh

chaos: ## the fault-injection suite, full profile (3,000 jobs and 30 s of faults per scenario)
	@CHAOS_PROFILE=full CHAOS_TIMEOUT=90m scripts/chaos.sh

chaos-short: ## the fault-injection suite, short profile (300 jobs and 8 s of faults per scenario; CI)
	@scripts/chaos.sh

bench-pressure: ## the public job-queue benchmark's pressure phases (held xid, readers, high load, faults) against baton bench --adapter on a cluster of its own; over an hour (BATON_PRESSURE=short: 20 s phases)
	BATON_PRESSURE=$${BATON_PRESSURE:-1} go test -tags chaos -count=1 -timeout 4h -v -run '^TestPressure$$' ./chaos/

build: ## build bin/baton
	@mkdir -p bin
	go build -buildvcs=auto -o bin/baton ./cmd/baton

release: ## release archives for linux and darwin, amd64 and arm64, with SHA256SUMS, into dist/ (VERSION=v1.2.3 to name one)
	@scripts/release.sh

install: ## put baton on the PATH (go install, into $(GOBIN))
	go install -buildvcs=auto ./cmd/baton
	@echo "installed $(GOBIN)/baton$$(case ":$$PATH:" in *":$(GOBIN):"*) ;; *) echo " (add $(GOBIN) to your PATH)";; esac)"

generate: tools ## regenerate the sqlc code in internal/store/ from queries/ and migrations/, and the TypeScript and Go clients from api/openapi.yaml
	$(GOBIN)/sqlc generate
	cd clients/typescript && npm ci --no-audit --no-fund && npm run generate
	cd clients/go && go tool oapi-codegen -config oapi-codegen.yaml ../../api/openapi.yaml

check: tools ## gofmt, go vet, staticcheck, the sqlc drift check, the OpenAPI lint (Redocly, Spectral), and no tracked file over 1 MB
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt: the files above need formatting" >&2; exit 1; }
	go vet ./... && go vet -tags chaos ./chaos/ && (cd deploy/kubernetes && go vet ./...) && (cd clients/go && go vet ./...)
	$(GOBIN)/staticcheck ./... && $(GOBIN)/staticcheck -tags chaos ./chaos/
	$(GOBIN)/sqlc diff || { echo "sqlc: generated code in internal/store/ is out of date; run make generate" >&2; exit 1; }
	npx --yes @redocly/cli@$(REDOCLY_VERSION) lint --format=stylish
	npx --yes @stoplight/spectral-cli@$(SPECTRAL_VERSION) lint --fail-severity=warn api/openapi.yaml
	@big=$$(git ls-files -z | xargs -0 -r stat -c '%s %n' 2>/dev/null | awk '$$1 > 1000000 { print $$2 }'); \
		test -z "$$big" || { echo "$$big"; echo "tracked files over 1 MB (a build output?): remove them from git" >&2; exit 1; }

tools: ## install sqlc and staticcheck through the Go module proxy
	@test -x $(GOBIN)/sqlc && $(GOBIN)/sqlc version | grep -q $(SQLC_VERSION) || go install github.com/sqlc-dev/sqlc/cmd/sqlc@$(SQLC_VERSION)
	@test -x $(GOBIN)/staticcheck && $(GOBIN)/staticcheck -version | grep -q $(patsubst v%,%,$(STATICCHECK_VERSION)) || go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
